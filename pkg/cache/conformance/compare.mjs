// Compares handoff's score with the committed baseline: fails when a
// required test that passed in the baseline fails now, or when the pass
// count dropped. Usage: node compare.mjs baseline.json score.json
import { readFileSync } from 'fs'
const [baseFile, scoreFile] = process.argv.slice(2)
const base = JSON.parse(readFileSync(baseFile, 'utf8'))
const now = JSON.parse(readFileSync(scoreFile, 'utf8'))
const known = new Set(Object.keys(base.failedRequired))
const regressed = now.failedRequired.filter(id => !known.has(id))
if (regressed.length || now.pass < base.pass) {
  console.log(`conformance: REGRESSION: pass ${now.pass} (baseline ${base.pass}); new required failures: ${regressed.join(' ') || 'none'}`)
  process.exit(1)
}
console.log(`conformance: ok: pass ${now.pass} >= baseline ${base.pass}, no new required failures`)
