// Evaluates IAM requests with @cloud-copilot/iam-simulate (pinned in
// package-lock.json). Reads {"requests": [...]} on stdin, each a ready
// Simulation (identity policies, resource policy, request) as check.py
// builds it from the transformed template; writes one verdict per request.
import { runSimulation } from '@cloud-copilot/iam-simulate'

let input = ''
for await (const chunk of process.stdin) input += chunk
const { requests } = JSON.parse(input)
const verdicts = []
for (const r of requests) {
  const simulation = {
    request: r.request,
    identityPolicies: r.identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: r.resourcePolicy ?? undefined,
    permissionBoundaryPolicies: r.permissionBoundaryPolicies ?? undefined
  }
  const res = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (res.resultType === 'error') {
    verdicts.push({ error: JSON.stringify(res.errors) })
  } else if (res.resultType !== 'single') {
    verdicts.push({ error: `unexpected ${res.resultType} result (a wildcard in the resource?)` })
  } else {
    verdicts.push({ result: res.overallResult })
  }
}
process.stdout.write(JSON.stringify({ verdicts }))
