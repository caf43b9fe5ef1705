-- A knowledge document's tags as one string of words, for its search vector. array_to_string is only STABLE (it
-- calls the element type's output function), which a generated column refuses; for text[] the result never changes.
CREATE OR REPLACE FUNCTION oshal_knowledge_words(p_tags text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_to_string(p_tags, ' ')
$$;
REVOKE ALL ON FUNCTION oshal_knowledge_words(text[]) FROM PUBLIC, oshal_api;
-- computing the generated column of a row it writes calls the function as the writer
GRANT EXECUTE ON FUNCTION oshal_knowledge_words(text[]) TO oshal_api;
