#!/usr/bin/python3
"""function_calling.py: a tool-call loop for OpenAI-style and Anthropic-style function
calling, with Airlock as the tools.  An example to copy from, not a library.

What it shows:
- the tools come from `airlockctl tool export --format openai|anthropic --token ID` (the
  same schemas the token's tools/list shows);
- each tool call goes to airlockd's /rpc as tools/call, with the model's tool-call id as
  the idempotency key (prefixed by the conversation's id): a call the host sends again,
  after a lost answer or a crash, gets the stored answer (`replayed: true`) instead of a
  second effect;
- a 429 or 503 whose retryAfterSeconds is short is waited out and retried with the same
  key; a longer one goes back to the model, with retryAfterSeconds, as a tool error;
- a tool error (isError, e.g. arguments that fail the schema) and a refusal (e.g. a tool
  the token does not grant) go back to the model as tool errors it can read and act on:
  OpenAI's tool message carries the JSON, Anthropic's tool_result sets is_error.

No live model is called: --turns names a JSON file of recorded model responses (a list of
OpenAI chat.completion objects, or of Anthropic message objects), replayed in order.
String values "${NAME}" in the tool arguments are replaced by --set NAME=VALUE (numbers
stay numbers), so a recording can name rows the caller made.

    AIRLOCK_TOKEN=alk_... examples/function_calling.py --api openai \\
        --url http://127.0.0.1:8080 --tools tools.json --turns examples/turns/openai.json \\
        --set CUSTOMER_ID=42

Prints the conversation as it went, one JSON message per line.  The token is read from
the environment, never from the command line (any local user can read a command line).
Needs python3-requests.
"""
import argparse
import json
import os
import sys
import time

import requests


class Gateway:
    """airlockd's /rpc with one bearer token, for one conversation."""

    def __init__(self, url, token, conversation, max_wait=2.0, attempts=4):
        self.url = url.rstrip("/") + "/rpc"
        self.headers = {"Content-Type": "application/json",
                        "Authorization": f"Bearer {token}"}
        self.conversation = conversation
        self.max_wait = max_wait
        self.attempts = attempts
        self.rid = 0

    def key_for(self, tool_call_id):
        # Keys are per tenant, 1 to 255 characters: the conversation and the model's id
        # for the call make it the same on every retry of that call, and only on those.
        return f"{self.conversation}:{tool_call_id}"[:255]

    def call(self, name, arguments, tool_call_id):
        """Runs one tool call.  Returns (relay, is_error): relay is the JSON to show the
        model.  Reads ignore the key; writes need one; it is sent either way."""
        params = {"name": name, "arguments": arguments,
                  "idempotency_key": self.key_for(tool_call_id)}
        for attempt in range(self.attempts):
            self.rid += 1
            try:
                r = requests.post(self.url, headers=self.headers, timeout=60, data=json.dumps(
                    {"jsonrpc": "2.0", "id": self.rid, "method": "tools/call",
                     "params": params}))
                body = r.json()
            except (requests.RequestException, ValueError) as e:
                # No answer: the call may or may not have run.  The same key makes the
                # retry safe either way.
                if attempt + 1 < self.attempts:
                    time.sleep(min(2 ** attempt * 0.2, self.max_wait))
                    continue
                return {"error": {"reason": "backend_unavailable", "message": str(e)}}, True
            if "result" in body:
                result = body["result"]
                return result["structuredContent"], bool(result.get("isError"))
            error = body["error"]
            data = error.get("data") or {}
            wait = data.get("retryAfterSeconds")
            if wait is not None and wait <= self.max_wait and attempt + 1 < self.attempts:
                time.sleep(wait)
                continue
            relay = {"error": {"reason": data.get("reason", "internal"),
                               "message": error.get("message", "")}}
            if wait is not None:
                relay["error"]["retryAfterSeconds"] = wait
            return relay, True
        raise AssertionError("unreachable")


def substitute(value, values):
    """value with every string "${NAME}" replaced by values[NAME]."""
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return values[value[2:-1]]
    return value


class RecordedModel:
    """Stands in for the model: answers each request with the next recorded response and
    keeps what it was sent (the tools and the messages), for whoever wants to check."""

    def __init__(self, path, api, values):
        with open(path, encoding="utf-8") as f:
            self.turns = json.load(f)
        self.api = api
        self.values = values
        self.requests = []

    def complete(self, messages, tools):
        self.requests.append({"messages": json.loads(json.dumps(messages)), "tools": tools})
        if not self.turns:
            raise RuntimeError("the recording has no more turns")
        turn = self.turns.pop(0)
        if self.api == "openai":
            for tc in turn["choices"][0]["message"].get("tool_calls") or []:
                args = substitute(json.loads(tc["function"]["arguments"]), self.values)
                tc["function"]["arguments"] = json.dumps(args)
        else:
            for block in turn["content"]:
                if block["type"] == "tool_use":
                    block["input"] = substitute(block["input"], self.values)
        return turn


def run_openai(model, gateway, messages, tools, max_turns=10):
    """OpenAI's chat.completions loop: the assistant message with tool_calls, then one
    role "tool" message per call, until a message without tool calls."""
    for _ in range(max_turns):
        message = model.complete(messages, tools)["choices"][0]["message"]
        messages.append(message)
        if not message.get("tool_calls"):
            return message.get("content")
        for tc in message["tool_calls"]:
            try:
                args = json.loads(tc["function"]["arguments"])
            except ValueError:
                relay, is_error = {"error": {"reason": "invalid_arguments",
                                             "message": "arguments are not JSON"}}, True
            else:
                relay, is_error = gateway.call(tc["function"]["name"], args, tc["id"])
            # OpenAI's tool message has no error flag: the JSON says so.
            messages.append({"role": "tool", "tool_call_id": tc["id"],
                             "content": json.dumps({"isError": is_error, **relay})})
    raise RuntimeError("too many turns")


def run_anthropic(model, gateway, messages, tools, max_turns=10):
    """Anthropic's messages loop: the assistant's tool_use blocks, then one user message
    of tool_result blocks (is_error set for errors), until stop_reason is not tool_use."""
    for _ in range(max_turns):
        response = model.complete(messages, tools)
        messages.append({"role": "assistant", "content": response["content"]})
        uses = [b for b in response["content"] if b["type"] == "tool_use"]
        if response.get("stop_reason") != "tool_use" or not uses:
            return "".join(b.get("text", "") for b in response["content"] if b["type"] == "text")
        results = []
        for block in uses:
            relay, is_error = gateway.call(block["name"], block["input"], block["id"])
            results.append({"type": "tool_result", "tool_use_id": block["id"],
                            "content": json.dumps(relay), "is_error": is_error})
        messages.append({"role": "user", "content": results})
    raise RuntimeError("too many turns")


def parse_set(items):
    values = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            values[name] = int(value)
        except ValueError:
            values[name] = value
    return values


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--api", choices=["openai", "anthropic"], required=True)
    ap.add_argument("--url", required=True, help="airlockd's base URL")
    ap.add_argument("--tools", required=True,
                    help="the output of airlockctl tool export --format API --token ID")
    ap.add_argument("--turns", required=True, help="recorded model responses (JSON list)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--conversation", default="conv-" + os.urandom(6).hex())
    ap.add_argument("--max-wait", type=float, default=2.0,
                    help="longest retryAfterSeconds waited out before retrying (seconds)")
    ap.add_argument("--prompt", default="Help the customer.")
    o = ap.parse_args(argv)
    token = os.environ.get("AIRLOCK_TOKEN")
    if not token:
        print("function_calling.py: set AIRLOCK_TOKEN", file=sys.stderr)
        return 64
    with open(o.tools, encoding="utf-8") as f:
        tools = json.load(f)
    model = RecordedModel(o.turns, o.api, parse_set(o.set))
    gateway = Gateway(o.url, token, o.conversation, max_wait=o.max_wait)
    messages = [{"role": "user", "content": o.prompt}]
    run = run_openai if o.api == "openai" else run_anthropic
    final = run(model, gateway, messages, tools)
    for m in messages:
        print(json.dumps(m))
    print(json.dumps({"final": final}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
