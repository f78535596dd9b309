"""A hangar validator written in Python: refuses calls to forbidden tools and calls whose
arguments carry something that looks like a secret.

Built with componentize-py against the `validator-plugin` world of `hangar:plugin@0.1.0`
(`wit/0.1.0`); see `build.sh` and `sdk/guides/python.md`.

Config (the plugin's `config:` in the hangar's file, handed to `configure` as JSON):

    forbidden_tools: [delete_repo, drop_database]   # tool names refused outright
    secret_patterns:                                # name -> Python regular expression
      aws-access-key: "AKIA[0-9A-Z]{16}"
      private-key: "-----BEGIN [A-Z ]*PRIVATE KEY-----"

A reason names the tool, or the argument (as a JSON pointer) and the pattern's name; it never
repeats the matched text, because the reason is shown to the client and logged.
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    Invocation,
    Level,
    Verdict,
    Verdict_Allow,
    Verdict_Deny,
)

KNOWN_KEYS = {"forbidden_tools", "secret_patterns"}

# Set by `configure`, which the hangar calls on every new instance before its first `validate`.
# An instance may then answer many calls (the hangar keeps well-behaved instances for reuse),
# so this holds the policy only: nothing about one call is kept for the next.
_forbidden: frozenset = frozenset()
_patterns: list = []


class Validator(exports.Validator):
    def configure(self, config_json: str) -> None:
        global _forbidden, _patterns
        try:
            config = json.loads(config_json)
        except ValueError as err:
            raise Err(f"config is not JSON: {err}")
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise Err("config must be a mapping with `forbidden_tools` and `secret_patterns`")
        unknown = sorted(set(config) - KNOWN_KEYS)
        if unknown:
            raise Err(
                f"unknown config key `{unknown[0]}`; expected one of "
                + ", ".join(f"`{k}`" for k in sorted(KNOWN_KEYS))
            )
        tools = config.get("forbidden_tools", [])
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise Err("`forbidden_tools` must be a list of tool names")
        patterns = config.get("secret_patterns", {})
        if not isinstance(patterns, dict):
            raise Err("`secret_patterns` must map a name to a regular expression")
        compiled = []
        for name, source in patterns.items():
            if not isinstance(source, str):
                raise Err(f"secret pattern `{name}` must be a string")
            try:
                compiled.append((name, re.compile(source)))
            except re.error as err:
                raise Err(f"secret pattern `{name}` is not a valid regular expression: {err}")
        _forbidden = frozenset(tools)
        _patterns = compiled
        host.log(
            Level.DEBUG,
            f"configured: {len(_forbidden)} forbidden tools, {len(_patterns)} secret patterns",
        )

    def validate(self, call: Invocation) -> Verdict:
        if call.tool in _forbidden:
            return deny(call, f"tool `{call.tool}` is forbidden (`forbidden_tools`)")
        try:
            arguments = json.loads(call.arguments_json)
        except ValueError:
            # The hangar always sends a JSON object; anything else is not ours to judge.
            return Verdict_Allow()
        for pointer, text in strings(arguments, ""):
            for name, pattern in _patterns:
                if pattern.search(text):
                    return deny(
                        call,
                        f"argument `{pointer or '/'}` of `{call.tool}` looks like a secret "
                        f"(pattern `{name}`); secrets must not be sent to tools",
                    )
        return Verdict_Allow()


def deny(call: Invocation, reason: str) -> Verdict:
    host.log(Level.INFO, f"denied a call to `{call.provider}`: {reason}")
    return Verdict_Deny(reason)


def strings(value, pointer):
    """Every string in `value` (object keys included) with the JSON pointer where it is."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for key, item in value.items():
            child = pointer + "/" + key.replace("~", "~0").replace("/", "~1")
            yield child, key
            yield from strings(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{pointer}/{index}")
