// Scores a results JSON of http-cache-tests with the suite's own logic
// (lib/display.mjs determineTestResult: a test whose dependency failed is
// not a pass). Usage: node score.mjs SUITE_DIR RESULTS.json
// Prints one JSON line: {pass, required, optional, total, failedRequired: [ids]}.
import { readFileSync } from 'fs'
import { pathToFileURL } from 'url'
import path from 'path'

const [suiteDir, file] = process.argv.slice(2)
const imp = p => import(pathToFileURL(path.join(suiteDir, p)).href)
const tests = (await imp('tests/index.mjs')).default
tests.push((await imp('tests/surrogate-control.mjs')).default)
const display = await imp('lib/display.mjs')
const results = JSON.parse(readFileSync(file, 'utf8'))
const out = { pass: 0, required: 0, optional: 0, total: 0, failedRequired: [] }
for (const suite of tests) {
  for (const test of suite.tests) {
    out.total++
    const r = display.determineTestResult(tests, test.id, results)
    const sym = r[2]
    if (sym === '✅' || sym === 'Y') {
      out.pass++
    } else if (sym === '⛔️') {
      out.required++
      out.failedRequired.push(test.id)
    } else if (sym === '⚠️') {
      out.optional++
    }
  }
}
console.log(JSON.stringify(out))
