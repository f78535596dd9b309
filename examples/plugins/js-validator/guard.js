// A hangar validator written in JavaScript: refuses calls to forbidden tools and calls whose
// arguments carry something that looks like a secret.
//
// Built with componentize-js against the `validator-plugin` world of `hangar:plugin@0.1.0`
// (`wit/0.1.0`); see `build.sh` and `sdk/guides/javascript.md`.
//
// Config (the plugin's `config:` in the hangar's file, handed to `configure` as JSON):
//
//     forbidden_tools: [delete_repo, drop_database]   # tool names refused outright
//     secret_patterns:                                # name -> JavaScript regular expression
//       aws-access-key: "AKIA[0-9A-Z]{16}"
//       private-key: "-----BEGIN [A-Z ]*PRIVATE KEY-----"
//
// A reason names the tool, or the argument (as a JSON pointer) and the pattern's name; it never
// repeats the matched text, because the reason is shown to the client and logged.

import { log } from 'hangar:plugin/host@0.1.0';

const KNOWN_KEYS = ['forbidden_tools', 'secret_patterns'];

// Set by `configure`, which the hangar calls on every new instance before its first `validate`.
// An instance may then answer many calls (the hangar keeps well-behaved instances for reuse),
// so this holds the policy only: nothing about one call is kept for the next.
let forbidden = new Set();
let patterns = [];

export const validator = {
  // `result<_, string>`: return to answer `ok`, throw a string to answer `err`.
  configure(configJson) {
    let config;
    try {
      config = JSON.parse(configJson);
    } catch (err) {
      throw `config is not JSON: ${err.message}`;
    }
    config ??= {};
    if (typeof config !== 'object' || Array.isArray(config)) {
      throw 'config must be a mapping with `forbidden_tools` and `secret_patterns`';
    }
    const unknown = Object.keys(config).filter((k) => !KNOWN_KEYS.includes(k)).sort();
    if (unknown.length > 0) {
      throw `unknown config key \`${unknown[0]}\`; expected one of ${KNOWN_KEYS.map((k) => `\`${k}\``).join(', ')}`;
    }
    const tools = config.forbidden_tools ?? [];
    if (!Array.isArray(tools) || !tools.every((t) => typeof t === 'string')) {
      throw '`forbidden_tools` must be a list of tool names';
    }
    const sources = config.secret_patterns ?? {};
    if (typeof sources !== 'object' || Array.isArray(sources)) {
      throw '`secret_patterns` must map a name to a regular expression';
    }
    const compiled = [];
    for (const [name, source] of Object.entries(sources)) {
      if (typeof source !== 'string') {
        throw `secret pattern \`${name}\` must be a string`;
      }
      try {
        compiled.push([name, new RegExp(source)]);
      } catch (err) {
        throw `secret pattern \`${name}\` is not a valid regular expression: ${err.message}`;
      }
    }
    forbidden = new Set(tools);
    patterns = compiled;
    log('debug', `configured: ${forbidden.size} forbidden tools, ${patterns.length} secret patterns`);
  },

  // `verdict` is a variant: `{ tag: 'allow' }`, `{ tag: 'deny', val: reason }` or
  // `{ tag: 'rewrite', val: argumentsJson }`.
  validate(call) {
    if (forbidden.has(call.tool)) {
      return deny(call, `tool \`${call.tool}\` is forbidden (\`forbidden_tools\`)`);
    }
    let args;
    try {
      args = JSON.parse(call.argumentsJson);
    } catch {
      // The hangar always sends a JSON object; anything else is not ours to judge.
      return { tag: 'allow' };
    }
    for (const [pointer, text] of strings(args, '')) {
      for (const [name, pattern] of patterns) {
        if (pattern.test(text)) {
          return deny(
            call,
            `argument \`${pointer || '/'}\` of \`${call.tool}\` looks like a secret ` +
              `(pattern \`${name}\`); secrets must not be sent to tools`,
          );
        }
      }
    }
    return { tag: 'allow' };
  },
};

function deny(call, reason) {
  log('info', `denied a call to \`${call.provider}\`: ${reason}`);
  return { tag: 'deny', val: reason };
}

// Every string in `value` (object keys included) with the JSON pointer where it is.
function* strings(value, pointer) {
  if (typeof value === 'string') {
    yield [pointer, value];
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      yield* strings(value[i], `${pointer}/${i}`);
    }
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const child = `${pointer}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      yield [child, key];
      yield* strings(item, child);
    }
  }
}
