// Counts one cache-tests run the way cache-tests.fyi does: a test without a kind, or of kind
// "required", passes or fails; "optimal" ones are optional; "check" ones only report a
// behaviour. Tests whose setup failed or whose dependencies failed count as not passed.
//   node summary.mjs NAME RESULTS.json [--failures]
// Prints one JSON line: {"server", "required":[passed,total], "optional":[..], "check":[..]}.
import { readFileSync } from 'node:fs'
import tests from 'http-cache-tests/tests/index.mjs'
import surrogate from 'http-cache-tests/tests/surrogate-control.mjs'
import { determineTestResult } from 'http-cache-tests/lib/display.mjs'

const [name, file, flag] = process.argv.slice(2)
const suites = [...tests, surrogate]
const results = JSON.parse(readFileSync(file, 'utf8'))
const count = { required: [0, 0], optional: [0, 0], check: [0, 0], setup_failed: 0 }
const failures = []
for (const suite of suites) {
  for (const test of suite.tests) {
    const kind = test.kind === 'optimal' ? 'optional' : test.kind === 'check' ? 'check' : 'required'
    const [, colour, symbol] = determineTestResult(suites, test.id, results)
    const passed = symbol === '✅' || symbol === 'Y'
    count[kind][1] += 1
    if (passed) count[kind][0] += 1
    if (results[test.id] && results[test.id][0] === 'Setup') count.setup_failed += 1
    if (!passed && kind !== 'check') failures.push(`${kind} ${test.id}: ${JSON.stringify(results[test.id])}`)
    void colour
  }
}
console.log(JSON.stringify({ server: name, ...count }))
if (flag === '--failures') for (const f of failures) console.error(f)
