"""Agent trajectories recorded by playing an agent's turns in CWM's environment: the prompts, every tool result
(what the tools really answer, in a sandbox) and budget notice, and format-error replies are the environment's
own, so a trajectory reads exactly as the release's agent would have seen its episode. The shipped agent
episodes (data/corpus/agent/episodes.jsonl) are made from data/corpus/agent/scripts.jsonl this way, and a test
plays them again.

A script is {"id", "repo" (a folder of the repository, relative to the repo root), "issue", "turns": [the
agent's turns after its "<think>\\n", as it would generate them]}.
"""

import json
import os

from cwm_common.errors import CwmError
from cwm_common.repo_paths import REPO
from cwm_data.chat_format import (
    THINK_END,
    THINK_START,
    FormatError,
    generation_prompt,
    observation,
    parse_tool_call,
    system_prompt,
    tool_role,
)
from cwm_data.special_tokens import EOT, special
from cwm_data.tokenizer import CwmTokenizer
from cwm_envs.sandbox import Sandbox
from cwm_tasks.agent_tools import NoSuchToolError, fit_message, tool_result_message
from cwm_tasks.swe import REPO_DIR, REPO_ROOT, SWE_ENVIRONMENT, SWE_USER, AgentLimits, agent_workspace

SCRIPTS = os.path.join(REPO, "data", "corpus", "agent", "scripts.jsonl")
EPISODES = os.path.join(REPO, "data", "corpus", "agent", "episodes.jsonl")
MAX_FEEDBACK_TOKENS = 32768


def _repository_files(folder: str) -> dict[str, str]:
    root = os.path.join(REPO, folder)
    if not os.path.isdir(root):
        raise CwmError(f"script repo {folder!r}: no such folder under {REPO}")
    files = {}
    for here, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            path = os.path.join(here, name)
            with open(path) as f:
                files[os.path.relpath(path, root)] = f.read()
    return files


def replay(script: dict, sandbox: Sandbox, tokenizer: CwmTokenizer, limits: AgentLimits = AgentLimits()) -> dict:
    """The agent-format episode (cwm_data.agent_format) of the script's turns played in the sandbox."""
    for path, text in _repository_files(script["repo"]).items():
        sandbox.put_file(f"{REPO_DIR}/{path}", text)
    tools = agent_workspace(sandbox, limits)
    environment = SWE_ENVIRONMENT.format(
        session_timeout=f"{int(limits.session_timeout_s)}-second",
        context_size=limits.context_size,
        max_turns=limits.max_turns,
    )
    system, user = system_prompt(environment), SWE_USER.format(issue=script["issue"], repo_root=REPO_ROOT)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    context = len(tokenizer.encode_pieces(generation_prompt([("system", system), ("user", user)], True)))
    submitted = False
    try:
        for number, action in enumerate(script["turns"], 1):
            messages.append({"role": "assistant", "content": THINK_START + action})
            context += len(tokenizer.encode_pieces([action, special(EOT)]))
            try:
                call = parse_tool_call(action, reasoning=True)
                result = tools.run(call)
            except (FormatError, NoSuchToolError) as e:
                if submitted and action.count(THINK_END) == 1:
                    break  # the final answer
                text = fit_message(tokenizer, "user", f"{type(e).__name__}: {e}", MAX_FEEDBACK_TOKENS)
                messages.append({"role": "user", "content": text})
                context += len(tokenizer.encode_pieces(observation("user", text, reasoning=True)))
                continue
            submitted = submitted or result.submission is not None
            role = tool_role(call.name)
            text = tool_result_message(
                tokenizer,
                role,
                result.feedback,
                limits.max_turns - number,
                context,
                limits.context_size,
                MAX_FEEDBACK_TOKENS,
            )
            messages.append({"role": "tool", "name": call.name, "content": text})
            context += len(tokenizer.encode_pieces(observation(role, text, reasoning=True)))
    finally:
        tools.close()
    return {"id": script["id"], "messages": messages}


def load_scripts(path: str = SCRIPTS) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def llama3_tokenizer() -> CwmTokenizer:
    """CWM's tokenizer (the Llama-3 ranks, CWM's specials), from the `llama-models` package's file, so budget
    notices count tokens as the release's environment does."""
    try:
        from importlib.resources import files

        path = files("llama_models") / "llama3" / "tokenizer.model"
    except ModuleNotFoundError:
        raise CwmError("the Llama-3 tokenizer file comes with the llama-models package (the test extras)") from None
    return CwmTokenizer.from_tiktoken(str(path))


def main():
    """Writes the shipped episodes from the scripts, playing them in bwrap sandboxes."""
    from cwm_envs.sandbox_factory import make_sandbox

    tokenizer = llama3_tokenizer()
    with open(EPISODES, "w") as out:
        for script in load_scripts():
            sandbox = make_sandbox("bwrap")
            try:
                out.write(json.dumps(replay(script, sandbox, tokenizer)) + "\n")
            finally:
                sandbox.close()
    print(f"wrote {EPISODES}")


if __name__ == "__main__":
    main()
