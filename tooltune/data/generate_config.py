"""The settings of one generation run (what kinds, how many, which phrasing) and what it returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from tooltune.coding_tools import DEFAULT_INSTRUCTIONS
from tooltune.data.examples import Example
from tooltune.data.teacher import TeacherStats

# 2: numbers in written forms ($2,000,000 / 2 million / 5%), "City, ST" places, near_miss examples
# 3: parallel includes fan-out requests (several values of one or two parameters: a call per combination);
#    near_miss looks for a tool with a sibling task instead of giving up; "City, ST" only when the schema asks
# 4: string values from the description's own examples ("e.g., 'C', 'F#'") and more typed banks (musical
#    keys, stock indexes, seasons, months, weekdays...) instead of filler words; array items inherit the
#    array's description; wh-questions ("Who was …?", "How much is …?") that want a call
# 5: values put where the task phrase names them ("convert 500 from USD to CAD", "the president during
#    the Civil War"), half of the requests
# 6: the agent's built-in coding tools are asked for the way developers ask ("open src/app.py", "run
#    `make lint`", follow-ups into a tool result), with results in the real tools' text form; the leak
#    index holds the built-in suites too, which drops three chit-chat/general questions of the pools that
#    are coding-tools no-call cases word for word (12 of 800 examples for BFCL simple_python)
# 7: the coding tools' no-call examples are mostly messages answered in text *with* the tools offered
#    (code questions, thanks, arithmetic, translations, inline code, asks out of reach; some after a
#    finished tool exchange); "what does src/app.py do?" reads the file and answers from its content;
#    more pairs in one message (write, run_tests, git_diff, three files); bare file names; file
#    bodies that fit the file's extension. Other tools' data is unchanged.
# 8: the coding tools are asked for two or three things at once more often: three-tool joins, one tool
#    three times (list, search, tests), two one-line writes; calls in the order the message asks them.
#    Other tools' data is unchanged.
# 9: a coding-tools experiment on branch gen9, not merged (worse on the demo with one seed).
# 10: a number may carry the unit its description names ("300K", "2 kg", "5J/K"; the call keeps the bare
#     number); a currency code may be said by name ("Canadian dollars" for CAD); a schema asking for
#     "City, ST" gets it from a request naming the city only, and a plain location (never a "city")
#     sometimes gets a full form in the request, kept whole. The coding tools' data is byte-identical to 8.
#     Phrasebook files (data/phrasebook.py) came later without a bump: a dataset made with one records it
#     in its sources (name@digest); every dataset made without one is byte-identical to before.
# 11: "e.g. from search_notes" in a description says where a value comes from; it is no example value
#     (a request said "the note from search_notes" and the call carried it). Only tool sets whose
#     descriptions say so change (the built-in notes-calendar tools); the coding tools' and BFCL
#     simple_python, multiple and parallel data are byte-identical to 10.
# 12: a string the description shapes as a date and time ("'YYYY-MM-DD HH:MM' (24-hour)", "YYYY-MM-DD
#     HH:MM:SS", "date and time") gets one in that shape (was a bare date), and a description naming
#     "YYYY-MM-DD" makes a date when the name decides nothing (was a word when neither the name nor the
#     description said "date"); a name still decides first (an email stays an email). Of the tool sets
#     measured only the built-in notes-calendar changes (set_reminder.when) and BFCL irrelevance's tools
#     (start_time/end_time "(YYYY-MM-DD HH:MM:SS)"); the coding tools', issue-tracker's and BFCL
#     simple_python, multiple, parallel and parallel_multiple values are unchanged (every parameter,
#     40 seeds), and the BFCL simple_python recipe's dataset holds byte-identical examples (its name changes).
# 13: a request says "please" once at most: a lead-in, a template and a tail could each say it ("Ok, please
#     run pip list please", "Please change fields of an existing issue with issue id of 49 please"; about
#     1% of coding requests, 0.5% of schema read-back ones); several asks joined in one message say it
#     once too. Every tool set's data changes: a request that loses its second please may now be a
#     near-duplicate of a later one, which is dropped, and every example after it shifts. Of 600
#     examples, 3-10 coding, 2-4 issue-tracker and 3 notes-calendar ones differ as a set (seeds 0, 1);
#     in order, coding seed 0 differs from its 241st example on.
# 14: a phrasebook follow-up step may give a value the user said (its `args` were looked for in the earlier
#     results alone, so a first step with args, or one repeating the user's words, never drew: 306 of 400
#     draws of the hand books' follow-ups failed, and a failed draw fell back to a chain read back from the
#     schemas, 67 of 74 two-call chains in H6a's issue-tracker data). Only books with follow-ups change;
#     the coding tools' data (its follow-ups are code) is byte-identical to 13: CODING_DATA_VERSION stays.
# 15: the opt-in trajectory kind's jobs on files for the built-in coding tools are recorded from the agent's
#     own tools on a generated project (data/recorded_jobs.py): real results, a write reported as the tool
#     reports it ("updated x (n bytes, m lines)", was "wrote x"), a search's hits in the test file beside
#     the definition, and a job that reads a wrong path, gets the tool's refusal and recovers from a listing.
#     The test-run jobs stay scripted (their write now reported as the tool reports it too). Only datasets
#     that draw the coding tools' trajectory kind change (the agent tasks bench; a phrasebook's jobs are
#     as before); the default mix does not draw it, so every other dataset is byte-identical to 14
#     (checked: the hand books' issue-tracker and notes-calendar data under the H4 mix, seeds 0 and 1).
#     A refusal is rendered as pydantic-ai sends it to the served model ({"error":"..."}). The scripted
#     fix-a-test job's function "average" became "midrange" and its modules left the task projects' names.
# 16: two more recorded jobs for the built-in coding tools' trajectory kind, set in sessions that refuse a
#     call as `tooltune serve` does (data/recorded_jobs.py): an edit refused without --allow-write, answered
#     with the change it would make; a test run refused without --allow-exec, the job going on with reads
#     and saying what was not run. Neither repeats the refused call. Six file jobs and two scripted test
#     runs are drawn evenly (were four and two), so only datasets that draw the trajectory kind change;
#     every other dataset is as under 15. Issue 34's T2 adapter called a tool its task had already
#     refused 38 times (of 59 refusals), and none of 15's jobs met a refusal.
GENERATOR_VERSION = "tooltune-data/16"
CODING_DATA_VERSION = "tooltune-data/13"
"""The last generator that changed the built-in coding tools' data: the demo names its dataset by it, so a
generator that leaves that data as it was keeps the measured demo data (tests pin the data's digest)."""

# ~25% of examples (after splitting multi-turn ones) end without a call: the model must learn not to
# over-call (BFCL irrelevance), including when the offered tool is about the topic but does another job.
DEFAULT_MIX: dict[str, float] = {
    "single": 0.16,
    "choose": 0.16,
    "parallel": 0.09,
    "edge_args": 0.07,
    "multi_answer": 0.08,
    "multi_chain": 0.05,
    "no_call": 0.2,
    "near_miss": 0.08,
    "chitchat": 0.11,
    # whole jobs for the agent's own tools (call -> result -> next call -> answer); opt in with --mix,
    # weight 0 by default so every dataset made before stays the same
    "trajectory": 0.0,
}
GENERATED_KINDS = tuple(DEFAULT_MIX)
# what `kinds` means when not given: every kind the default mix draws (an opt-in kind is asked for by name)
DEFAULT_KINDS = tuple(k for k, w in DEFAULT_MIX.items() if w > 0)
# the weight an opt-in kind gets when asked for by name without a mix
OPT_IN_WEIGHT = 0.15


class GenerateConfig(BaseModel):
    n: int = Field(default=500, ge=1, description="Examples (lines) to produce after splitting and dedup.")
    seed: int = Field(
        default=0, description="Random seed: the same seed and sources give the same dataset hash."
    )
    kinds: list[str] = Field(
        default_factory=lambda: list(DEFAULT_KINDS),
        description="Kinds to generate: single, choose, parallel, edge_args, multi_answer, multi_chain, "
        "no_call, near_miss, chitchat, trajectory (default: all but trajectory, mixed so about a quarter "
        "make no call; trajectory = whole multi-step jobs, for the built-in coding tools or a phrasebook's "
        "jobs, when named here (weight 0.15) or given a weight in mix).",
    )
    split_turns: bool = Field(
        default=True, description="One example per assistant turn (loss on every turn)."
    )
    max_tools: int = Field(default=4, ge=1, description="Most tools offered in one example (tokens!).")
    offer_all_tools: bool = Field(
        default=False,
        description="Every example offers every tool its answer allows, in the tool set's order, as an agent "
        "that always sends all its tools does (tooltune serve sends its eight): the whole set for calls, "
        "text answers and chitchat; for a refusal of a tool that is not offered, all but the refused tool's "
        "relatives and any tool that could do its job (a shell); for a near miss, all but the tools that "
        "would serve it. max_tools then has no say, and examples you give (--examples) keep their own "
        "tools. Off: each example offers a drawn few (up to max_tools), shuffled.",
    )
    teacher_share: float = Field(
        default=0.3, ge=0, le=1, description="Share of requests sent to the teacher."
    )
    teacher_no_call_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of the requests answered in text (near misses, requests for a tool that is not "
        "offered) sent to the teacher; None: teacher_share.",
    )
    teacher_tries: int = Field(
        default=2,
        ge=1,
        le=5,
        description="Samples asked of the teacher per request until one keeps every value and reads as a "
        "request (a retry costs one more completion).",
    )
    system_prompt: str | None = Field(
        default=None,
        description="System message to put in front of a share of conversations: the one the model will "
        "be served with, so training matches inference; 'agent' = tooltune's own coding agent's "
        "instructions (what `serve` and `ask` send).",
    )
    system_share: float = Field(
        default=0.5, ge=0, le=1, description="Share of conversations that get system_prompt (rest: none)."
    )
    contrast_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of no_call requests for a tool that is not offered that also get their twin: "
        "the same words with that tool offered, answered with its call (kind 'contrast'). The pair "
        "differs only in the offered tools, so the model must read them to tell call from refusal.",
    )
    near_miss_contrast_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of near misses (the task next to an offered tool's) that also get their twin: "
        "the same request worded with the tool's own task, the same tools offered, answered with its "
        "call (kind 'contrast'). The pair differs in the task words only, so the model must read them.",
    )
    absent_tool_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of no_call examples that refuse a request for a tool that is not offered; the "
        "rest are questions, chit-chat and asks no tool serves, answered in text with tools offered. An "
        "agent that always has its tools never meets the first kind. None: 0.7.",
    )
    call_question_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description='Share of requests answered with a call that are asked as a question ("What is the '
        'density of ...?", "Who was the U.S. president during ...?") when the tool\'s task reads as one; '
        "the rest are commands. None: 0.5, as for the requests answered in text. Chit-chat and general "
        "questions make text answers questions more often than calls, and adapters learned to refuse "
        "questions the offered tool answers; a higher share evens that out.",
    )
    phrasebook_share: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Share of requests for tools with a phrasebook (the built-in coding tools', or a "
        'phrasebook file\'s) written the way people ask ("open src/app.py", "bump #311 to high", '
        "follow-ups into a result); the rest are phrased from the schema. Tools without a phrasebook are "
        "always phrased from their schema.",
    )
    tool_odds: Literal["even", "intents"] = Field(
        default="even",
        description="How often each tool is the one asked for. even: every tool alike. intents: a tool "
        "of a phrasebook file by the square root of the different things its requests ask of it (the "
        "sets of parameters its templates fill: an update tool asked to set a priority, an assignee or a "
        "milestone has three, a list tool asked with or without a filter two), so a tool asked many ways "
        "gets more examples and a one-way tool still its share; other tools at the average of those.",
    )
    mix: dict[str, float] | None = Field(
        default=None,
        description='Relative weight per kind, e.g. {"single": 0.35, "choose": 0.25, "no_call": 0.12, '
        '"near_miss": 0.12} (default: a mix for multi-turn agents). Match the target: single-turn '
        "benchmarks want few text-ending examples (~25%), or a small model learns to refuse.",
    )

    @field_validator("system_prompt")
    @classmethod
    def _agent_alias(cls, value: str | None) -> str | None:
        """``"agent"`` names the coding agent's own instructions — what `serve`/`ask` send."""
        if value == "agent":
            return DEFAULT_INSTRUCTIONS
        return value


class GenerateResult(BaseModel):
    examples: list[Example]
    counts: dict[str, int]
    conversations: int = 0
    dropped_duplicates: int = 0
    dropped_leaked: int = 0
    leaked_sources: list[str] = Field(default_factory=list)
    dropped_unverifiable: int = 0
    teacher: TeacherStats | None = None
    phrasebook_skipped: list[str] = Field(default_factory=list)
    seconds: float = 0.0
