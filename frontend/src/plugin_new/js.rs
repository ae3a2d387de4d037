//! The JavaScript scaffold: `plugin.js` (the exports) over `logic.js` (the decision, a plain
//! module), tests with `node --test`, built with componentize-js.

use super::{Kind, Scaffold};

/// The componentize-js the repository's plugins are built with.
const COMPONENTIZE_JS: &str = "0.23.0";

pub fn files(s: &Scaffold) -> Vec<(String, String)> {
    let world = s.kind.world();
    let (object, method, call) = match s.kind {
        Kind::Scorer => ("scoring", "score", "Float64Array.from(score(candidates))"),
        Kind::Filter => ("filtering", "filter", "Uint32Array.from(keep(candidates))"),
        Kind::Picker => ("picking", "pick", "Uint32Array.from(rank(candidates))"),
    };
    let function = match s.kind {
        Kind::Scorer => "score",
        Kind::Filter => "keep",
        Kind::Picker => "rank",
    };
    let plugin = format!(
        r#"// {name}: a Switchyard {world} plugin in JavaScript (componentize-js).
// Build: ./build.sh    Test: node --test    Check: switchyard plugin check {name}.wasm

import {{ log }} from 'switchyard:plugin/host@0.1.0';
import {{ {function} }} from './logic.js';

export const lifecycle = {{
  configure(config) {{
    // The `config` of the plugin's entry in the router, as JSON; throw a string to refuse it.
    try {{
      JSON.parse(config || '{{}}');
    }} catch (e) {{
      throw `{name} config is not JSON: ${{e}}`;
    }}
  }},
  onTopology(topology) {{
    // Names, labels and URLs arrive here once per change; decisions carry numbers only.
    log('debug', `${{topology.instances.length}} instances`);
  }},
}};

export const {object} = {{
  {method}(_request, candidates) {{
    return {call};
  }},
}};
"#,
        name = s.name
    );
    let logic = match s.kind {
        Kind::Scorer => {
            r#"// The decision, a plain module so `node --test` can run it without the component.

// Higher is better: less work per unit of weight; an unhealthy instance or a full KV cache
// sinks below every other.
export function score(candidates) {
  return candidates.map((c) => {
    if (c.health === 'unhealthy' || c.kvUsage >= 0.99) return -1e9;
    return -(c.inFlight + c.queued) / Math.max(c.weight, 0.001);
  });
}
"#
        }
        Kind::Filter => {
            r#"// The decision, a plain module so `node --test` can run it without the component.

// Positions of the candidates whose KV cache is not nearly full; all of them when every cache
// is full (keeping none makes the router answer 503 filtered_out).
export function keep(candidates) {
  const roomy = [];
  candidates.forEach((c, i) => { if (c.kvUsage < 0.95) roomy.push(i); });
  return roomy.length > 0 ? roomy : candidates.map((_, i) => i);
}
"#
        }
        Kind::Picker => {
            r#"// The decision, a plain module so `node --test` can run it without the component.

// Positions best first: healthy before unhealthy, then the least busy; ties keep the order
// given (the scorers' ranking).
export function rank(candidates) {
  const key = (c) => [c.health === 'unhealthy' ? 1 : 0, c.inFlight + c.queued];
  return candidates
    .map((c, i) => ({ i, k: key(c) }))
    .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.i - b.i)
    .map((e) => e.i);
}
"#
        }
    };
    let test = match s.kind {
        Kind::Scorer => "test('less load scores higher and a full cache lowest', () => {\n  const [idle, busy, full] = score([c(0, 0.1), c(5, 0.1), c(0, 1.0)]);\n  assert.ok(idle > busy && busy > full);\n});\n",
        Kind::Filter => "test('full caches are dropped unless all are full', () => {\n  assert.deepStrictEqual(keep([c(0, 0.1), c(0, 0.99)]), [0]);\n  assert.deepStrictEqual(keep([c(0, 0.99), c(0, 1.0)]), [0, 1]);\n});\n",
        Kind::Picker => "test('the least busy healthy instance comes first', () => {\n  const sick = { ...c(0, 0.1), health: 'unhealthy' };\n  assert.deepStrictEqual(rank([sick, c(4, 0.1), c(1, 0.1)]), [2, 1, 0]);\n});\n",
    };
    let test = format!(
        "// Unit tests of the decision: node --test\nimport test from 'node:test';\nimport assert from 'node:assert';\nimport {{ {function} }} from './logic.js';\n\nconst c = (inFlight, kvUsage) => ({{ inFlight, queued: 0, kvUsage, weight: 1, health: 'healthy' }});\n\n{test}"
    );
    vec![
        ("plugin.js".into(), plugin),
        ("logic.js".into(), logic.to_owned()),
        ("logic.test.js".into(), test),
        (
            "package.json".into(),
            format!(
                "{{\n  \"name\": \"{name}\",\n  \"private\": true,\n  \"type\": \"module\",\n  \"scripts\": {{ \"test\": \"node --test\", \"build\": \"./build.sh\" }},\n  \"devDependencies\": {{ \"@bytecodealliance/componentize-js\": \"{COMPONENTIZE_JS}\" }}\n}}\n",
                name = s.name
            ),
        ),
        (
            "build.sh".into(),
            format!(
                "#!/bin/sh\n# Builds {name}.wasm (needs: npm install). `-d http -d fetch-event` keeps wasi:http,\n# which the router does not grant, out of the component's imports.\nset -e\ncd \"$(dirname \"$0\")\"\nnode_modules/.bin/componentize-js plugin.js --wit wit --world-name {world} \\\n    -d http -d fetch-event -o {name}.wasm\necho \"built {name}.wasm\"\n",
                name = s.name
            ),
        ),
        (
            "test.sh".into(),
            format!(
                "#!/bin/sh\nset -e\ncd \"$(dirname \"$0\")\"\nnode --test\n./build.sh\nswitchyard plugin check {name}.wasm\n",
                name = s.name
            ),
        ),
        (".gitignore".into(), "*.wasm\nnode_modules/\n".into()),
    ]
}
