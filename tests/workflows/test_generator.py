"""The offline workflow generator: plain-English descriptions become valid, deterministic definitions."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from oshal.errors import Invalid
from oshal.workflows.definition import (
    STEP_ID,
    WORKFLOW_NAME,
    WorkflowDefinition,
    canonical_json,
    load_definition_text,
    parse_definition,
)
from oshal.workflows.generator import (
    DEFAULT_BOT,
    describe_definition,
    diff_definitions,
    generate_definition,
    split_clauses,
)

# The capabilities of the demo bots in fleet/*.yaml.
DEMO_FLEET = {"echo": ("echo",), "extractor": ("extract", "text"), "planner": ("plan", "build"),
              "reviewer": ("review", "build"), "summarizer": ("summarize", "text"), "triage": ("classify", "support")}
REVIEW_LOOP = "Write the draft, then review it until approved, at most 3 rounds."


def steps_of(definition: WorkflowDefinition) -> list[dict[str, Any]]:
    return list(definition.to_document()["steps"])


def kinds(definition: WorkflowDefinition) -> list[str]:
    return [step.kind for step in definition.steps]


def by_id(definition: WorkflowDefinition) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in steps_of(definition)}


@pytest.mark.parametrize("description", [
    "Classify the ticket, then summarize it, then draft a reply.",
    "Classify the ticket; summarize it; draft a reply",
    "Classify the ticket -> summarize it → draft a reply",
    "1. Classify the ticket 2. Summarize it 3. Draft a reply",
    "1) Classify the ticket\n2) Summarize it\n3) Draft a reply",
    "First classify the ticket. Next, summarize it, and finally draft a reply.",
])
def test_a_linear_description_becomes_one_task_per_clause_and_a_done_end(description: str) -> None:
    definition = generate_definition(description)

    assert kinds(definition) == ["task", "task", "task", "end"]
    assert [s["capability"] for s in steps_of(definition)[:3]] == ["classify", "summarize", "build"]
    assert [s.id for s in definition.steps] == ["classify_ticket", "summarize", "draft_reply", "done"]
    assert steps_of(definition)[-1] == {"id": "done", "kind": "end"}  # status done is the default


def test_the_first_step_gets_the_ticket_input_and_later_steps_the_previous_output() -> None:
    steps = steps_of(generate_definition("Extract the fields, then summarize them"))

    assert "input" not in steps[0]
    assert steps[1]["input"] == {"text": "${ticket.input.text}", "previous": "${steps.extract_fields.output}"}


def test_an_action_after_and_is_its_own_step_but_a_second_object_is_not() -> None:
    assert split_clauses("Summarize and classify the text") == ["Summarize", "classify the text"]
    assert split_clauses("Extract the emails and the urls") == ["Extract the emails and the urls"]
    assert split_clauses("Plan the work and then build it, then review it") == ["Plan the work", "build it",
                                                                               "review it"]


def test_sign_off_becomes_an_approval_step_between_the_work() -> None:
    definition = generate_definition("Draft a reply, then get the manager's sign-off, then send it")

    assert kinds(definition) == ["task", "approval", "task", "end"]
    approval = by_id(definition)["approval"]
    assert approval["prompt"] == "get the manager's sign-off"
    assert "on_reject" not in approval  # a rejection cancels the ticket


def test_an_approved_adjective_is_not_an_approval() -> None:
    assert kinds(generate_definition("Send the approved invoice to the customer")) == ["task", "end"]


def test_otherwise_escalate_after_an_approval_routes_rejections_to_a_human() -> None:
    definition = generate_definition("Plan the change. Get approval from the owner, otherwise escalate to a human.")

    assert kinds(definition) == ["task", "approval", "end", "end"]
    assert by_id(definition)["approval"]["on_reject"] == "escalate"
    assert by_id(definition)["escalate"] == {"id": "escalate", "kind": "end", "status": "escalated"}


def test_a_review_until_approved_becomes_review_decision_and_a_bounded_loop() -> None:
    definition = generate_definition(REVIEW_LOOP)

    assert kinds(definition) == ["task", "task", "decision", "loop", "end", "end"]
    steps = by_id(definition)
    assert steps["review"]["capability"] == "review"
    assert steps["review"]["input"]["previous"] == "${steps.write_draft.output}"
    assert steps["approved"]["cases"] == [
        {"when": {"path": "steps.review.output.verdict", "value": "approve"}, "goto": "done"}]
    assert steps["approved"]["default"] == "rework"
    assert steps["rework"] == {"id": "rework", "kind": "loop", "goto": "write_draft", "max_rounds": 3,
                               "exhausted": "escalate"}


@pytest.mark.parametrize(("wording", "rounds"), [
    ("at most 3 rounds", 3), ("up to five times", 5), ("no more than 4 revisions", 4), ("7 iterations", 7),
    ("", 2), ("at most 40 rounds", 10), ("at most 0 rounds", 1),
])
def test_the_loop_bound_comes_from_the_text_clamped_to_1_through_10(wording: str, rounds: int) -> None:
    definition = generate_definition(f"Write the draft, then revise it until approved {wording}")

    assert by_id(definition)["rework"]["max_rounds"] == rounds


def test_work_and_its_revision_in_one_clause_become_a_task_and_a_loop() -> None:
    definition = generate_definition("Draft the reply and revise it until the reviewer approves. Then send it.")

    assert [s.id for s in definition.steps] == ["draft_reply", "reviewer", "approved", "rework", "send", "done",
                                                "escalate"]
    assert by_id(definition)["approved"]["cases"][0]["goto"] == "send"
    assert by_id(definition)["rework"]["goto"] == "draft_reply"


def test_iterating_until_tests_pass_decides_on_the_passed_field() -> None:
    definition = generate_definition("Build it and iterate until the tests pass, at most 4 rounds")

    decision = by_id(definition)["passed"]
    assert decision["cases"][0]["when"] == {"path": "steps.tests.output.passed", "op": "truthy"}
    assert by_id(definition)["rework"]["goto"] == "build"


def test_a_plain_test_or_review_is_a_verify_step_that_escalates_on_failure() -> None:
    definition = generate_definition("Build the service, then test it. Proofread the notes.")

    steps = by_id(definition)
    assert kinds(definition) == ["task", "verify", "verify", "end", "end"]
    assert steps["test"]["check"] == {"path": "output.passed", "op": "truthy"}
    assert steps["proofread_notes"]["check"] == {"path": "output.verdict", "value": "approve"}
    assert steps["test"]["on_fail"] == steps["proofread_notes"]["on_fail"] == "escalate"


def test_a_revision_with_no_earlier_work_to_redo_is_a_verify_step() -> None:
    assert kinds(generate_definition("Review the contract until approved")) == ["verify", "end", "end"]


@pytest.mark.parametrize("wording", ["in parallel", "at the same time", "simultaneously"])
def test_actions_in_parallel_become_one_branch_each(wording: str) -> None:
    definition = generate_definition(f"Extract the fields, summarize the text and classify it {wording}")

    assert kinds(definition) == ["parallel", "end"]
    branches = steps_of(definition)[0]["branches"]
    assert [(b["id"], b["capability"]) for b in branches] == [
        ("extract_fields", "extract"), ("summarize_text", "summarize"), ("classify", "classify")]


def test_a_single_action_in_parallel_is_just_a_task() -> None:
    assert kinds(generate_definition("Summarize the text in parallel")) == ["task", "end"]


@pytest.mark.parametrize(("description", "items"), [
    ("Plan the release, then for each step of the plan, write the code", "steps.plan_release.output.steps"),
    ("Build the modules. For every unit, write the docs", "steps.build_modules.output.units"),
    ("Extract the invoices, then summarize each of them", "steps.extract_invoices.output.items"),
    ("Summarize each of the documents", "ticket.input.items"),
])
def test_for_each_fans_out_over_the_list_the_previous_step_produces(description: str, items: str) -> None:
    definition = generate_definition(description)

    fanout = next(s for s in steps_of(definition) if s["kind"] == "fanout")
    assert fanout["items"] == items
    assert "input" not in fanout  # each child ticket gets its item


def test_the_fanout_action_is_classified_without_the_for_each_phrase() -> None:
    definition = generate_definition("Plan the release, then for each step of the plan, write the code")

    assert by_id(definition)["write_code"]["capability"] == "build"


def test_a_final_hand_off_ends_the_run_escalated() -> None:
    definition = generate_definition("Triage the request, then hand it off to a human")

    assert kinds(definition) == ["task", "end"]
    assert steps_of(definition)[-1] == {"id": "escalate", "kind": "end", "status": "escalated"}


def test_an_escalation_worded_as_a_condition_is_the_previous_steps_failure_path() -> None:
    definition = generate_definition("Classify the request; if it fails, escalate to a human. Then summarize it.")

    assert [s.id for s in definition.steps] == ["classify_request", "summarize", "done", "escalate"]
    assert by_id(definition)["classify_request"]["on_fail"] == "escalate"
    assert "on_fail" not in by_id(definition)["summarize"]


def test_work_followed_by_an_escalation_in_the_same_clause_keeps_the_work() -> None:
    definition = generate_definition("Test the code and escalate to a human if it fails")

    assert kinds(definition) == ["verify", "end", "end"]


def test_a_leading_escalation_rule_applies_to_every_step() -> None:
    definition = generate_definition("If anything fails, escalate to a human. Plan the work, then build it.")

    assert [s.get("on_fail") for s in steps_of(definition)] == ["escalate", "escalate", None, None]


def test_a_lone_escalation_is_a_valid_one_step_workflow() -> None:
    assert steps_of(generate_definition("Escalate to a human")) == [
        {"id": "escalate", "kind": "end", "status": "escalated"}]


def test_without_a_fleet_steps_are_addressed_by_capability_or_the_default_bot() -> None:
    steps = by_id(generate_definition("Plan the work, then send the email"))

    assert steps["plan_work"]["capability"] == "plan"
    assert steps["send_email"]["bot"] == DEFAULT_BOT


def test_with_the_demo_fleet_a_capability_nobody_has_falls_back_to_the_default_bot() -> None:
    steps = by_id(generate_definition("Triage the ticket, then build the fix, then test it",
                                      bots=DEMO_FLEET))

    assert steps["triage_ticket"]["capability"] == "classify"
    assert steps["build_fix"]["capability"] == "build"
    assert steps["test"]["bot"] == DEFAULT_BOT  # no bot has "test" and none is named like it


def test_a_bot_whose_name_matches_is_used_when_no_bot_has_the_capability() -> None:
    bots = {"tester": ["qa-suite"], "classifier": ["labels"], "echo": ["echo"]}
    steps = by_id(generate_definition("Classify it, then test it, then ask echo to confirm", bots=bots))

    assert steps["classify"]["bot"] == "classifier"
    assert steps["test"]["bot"] == "tester"
    assert steps["echo_confirm"]["capability"] == "echo"  # a fleet capability named in the text is a verb too


def test_a_fleet_capability_named_in_the_text_addresses_by_capability() -> None:
    steps = steps_of(generate_definition("Ask support to answer the customer", bots=DEMO_FLEET))
    assert steps[0]["capability"] == "support"
    fleet = {**DEMO_FLEET, "architect": ("decompose",)}
    assert steps_of(generate_definition("Decompose the goal", bots=fleet))[0]["capability"] == "decompose"
    assert steps_of(generate_definition("Decompose the goal", bots=DEMO_FLEET))[0]["capability"] == "plan"


def test_repeated_verbs_get_numbered_ids_and_every_id_is_valid() -> None:
    definition = generate_definition(
        "Summarize the text, then summarize the text, then summarize the text. "
        "Then antidisestablishmentarianismify the supercalifragilisticexpialidocious documents. 42 then ok")

    ids = [s.id for s in definition.steps]
    assert ids[:3] == ["summarize_text", "summarize_text_2", "summarize_text_3"]
    assert all(re.fullmatch(STEP_ID, step_id) for step_id in ids)
    assert len(set(ids)) == len(ids)


def test_the_name_is_given_or_made_from_the_first_words() -> None:
    assert generate_definition("Summarize it", name="digest").name == "digest"
    assert generate_definition("Classify the ticket quickly and well").name == "classify-the-ticket-quickly-and"
    assert generate_definition("2024 report: summarize it").name == "wf-2024-report-summarize-it"
    assert re.fullmatch(WORKFLOW_NAME, generate_definition("Ünïcode — summarize it").name)


def test_words_in_any_script_make_a_step_for_the_default_bot() -> None:
    definition = generate_definition("总结这段文字")

    assert steps_of(definition)[0] == {"id": "step", "kind": "task", "title": "总结这段文字", "bot": DEFAULT_BOT}
    assert definition.name == "workflow"


def test_an_invalid_given_name_is_refused_by_the_same_validation_as_yaml() -> None:
    with pytest.raises(Invalid, match="name"):
        generate_definition("Summarize it", name="Not A Name")


@pytest.mark.parametrize("description", ["", "   ", "\n\n", "42. 7) !!! -> ;", "then, and then."])
def test_a_description_without_words_is_refused_with_an_example(description: str) -> None:
    with pytest.raises(Invalid) as raised:
        generate_definition(description)

    assert "no steps" in raised.value.message
    assert raised.value.hint is not None and "e.g." in raised.value.hint


def test_more_steps_than_a_workflow_may_have_is_refused_not_truncated() -> None:
    with pytest.raises(Invalid, match="steps"):
        generate_definition("; ".join(f"summarize part {n}" for n in range(120)))


def test_the_same_input_gives_byte_identical_documents() -> None:
    description = REVIEW_LOOP + " Extract the data and summarize it in parallel. Get sign-off."
    reversed_fleet = dict(reversed(list(DEMO_FLEET.items())))

    first = canonical_json(generate_definition(description, bots=DEMO_FLEET).to_document())
    again = canonical_json(generate_definition(description, bots=reversed_fleet).to_document())

    assert first == again
    assert generate_definition(description).digest() == generate_definition(description).digest()


WORDS = ["plan", "build", "review", "test", "summarize", "classify", "extract", "approve", "sign-off", "escalate",
         "hand", "off", "to", "a", "human", "for", "each", "of", "in", "parallel", "until", "approved", "at",
         "most", "3", "rounds", "then", "and", ",", ";", ".", "->", "1.", "2)", "if", "it", "fails", "the", "code",
         "draft", "send", "otherwise", "iterate", "simultaneously", "every", "step", "\n", "qa", "revise"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=25))
def test_any_description_yields_a_valid_deterministic_definition_ending_in_an_end(words: list[str]) -> None:
    description = " ".join(words)
    try:
        definition = generate_definition(description)
    except Invalid as e:
        assert "no steps" in e.message
        assert not split_clauses(description)
        return

    assert definition.steps[-1].kind == "end"
    document = definition.to_document()
    assert parse_definition(document) == definition
    assert load_definition_text(yaml.safe_dump(document, sort_keys=False)) == definition
    assert canonical_json(generate_definition(description).to_document()) == canonical_json(document)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_either_generates_or_is_refused_as_invalid(text: str) -> None:
    try:
        definition = generate_definition(text)
    except Invalid:
        return
    assert parse_definition(definition.to_document()) == definition


def test_describe_shows_one_line_per_step() -> None:
    text = describe_definition(generate_definition(REVIEW_LOOP + " Get sign-off, otherwise escalate."))

    assert text.splitlines() == [
        "1. write_draft — task → capability build",
        "2. review — task → capability review",
        "3. approved — decision: if steps.review.output.verdict eq 'approve' → approval; else → rework",
        "4. rework — loop back to write_draft, at most 3 rounds, then escalate",
        "5. approval — approval, on reject → escalate",
        "6. done — end (done)",
        "7. escalate — end (escalated)",
    ]


def test_describe_covers_parallel_fanout_verify_and_failure_paths() -> None:
    text = describe_definition(generate_definition(
        "Plan it; if it fails, escalate. For each step, build it. Test it. Extract and summarize it in parallel.",
        bots={"echo": ["echo"], "planner": ["plan", "build"]}))

    assert text.splitlines() == [
        "1. plan — task → capability plan, on failure → escalate",
        "2. build — for each of steps.plan.output.steps → capability build",
        "3. test — verify → bot echo, passes when output.passed truthy, else → escalate",
        "4. parallel — parallel: extract → bot echo, summarize → bot echo",
        "5. done — end (done)",
        "6. escalate — end (escalated)",
    ]


def test_diff_of_a_new_workflow_adds_every_line() -> None:
    definition = generate_definition("Summarize it", name="digest")

    diff = diff_definitions(None, definition)

    assert diff.startswith("--- (new workflow)\n+++ digest v1\n")
    assert "+name: digest\n" in diff
    assert not any(line.startswith("-") for line in diff.splitlines()[2:])


def test_diff_shows_only_what_changed_and_nothing_for_the_same_definition() -> None:
    old = generate_definition(REVIEW_LOOP, name="drafts")
    new = generate_definition(REVIEW_LOOP.replace("3 rounds", "5 rounds"), name="drafts")

    diff = diff_definitions(old, new)

    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert sorted(changed) == sorted([
        "-description: Write the draft, then review it until approved, at most 3 rounds.",
        "+description: Write the draft, then review it until approved, at most 5 rounds.",
        "-  title: review it until approved, at most 3 rounds",
        "+  title: review it until approved, at most 5 rounds",
        "-  max_rounds: 3", "+  max_rounds: 5"])
    assert diff_definitions(old, old) == ""
