-- requires: oshal_isolate_tenants, oshal_knowledge_words
-- The knowledge store (issue 15): a tenant's runbooks, past incident reports and other markdown documents, each
-- named by (collection, slug) and found by full-text search, ranked by where the words match: title (A) over
-- tags (B) over body (C). Search is Postgres full text only: no embeddings are computed (no embedding model ships
-- offline), so the pgvector extension is not installed even where the server has it.
CREATE TABLE knowledge_documents (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    collection  text NOT NULL CHECK (collection ~ '^[a-z][a-z0-9-]{0,39}$' AND collection <> 'search'),
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body        text NOT NULL CHECK (octet_length(body) <= 262144),
    tags        text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    source      text NOT NULL DEFAULT '' CHECK (char_length(source) <= 500),
    created_by  uuid,
    updated_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    search      tsvector NOT NULL GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', title), 'A')
                    || setweight(to_tsvector('english', oshal_knowledge_words(tags)), 'B')
                    || setweight(to_tsvector('english', body), 'C')) STORED,
    UNIQUE (tenant_id, collection, slug)
);
CREATE INDEX knowledge_documents_search ON knowledge_documents USING gin (search);

SELECT oshal_isolate_tenants('knowledge_documents');
-- Create or replace by (collection, slug): a replace changes the content, never the name or the creator.
GRANT SELECT, INSERT, DELETE ON knowledge_documents TO oshal_api;
GRANT UPDATE (title, body, tags, source, updated_by, updated_at) ON knowledge_documents TO oshal_api;
