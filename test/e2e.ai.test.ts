import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { egressNames, METADATA_ADDRESS } from '../src/container/aiEgress.js';
import { docker, ONE_PYTHON, startHarness, uniqueId } from './helpers/harness.js';
import { startTestHost } from '../src/local/testHost.js';

const exec = promisify(execFile);

// Tries each target with a short timeout and reports what it could reach.
const PROBE = `
import json, os, socket, urllib.request
out = {'endpoint': os.environ.get('AI_ENDPOINT')}
try:
    out['ai'] = urllib.request.urlopen(os.environ['AI_ENDPOINT'] + '/', timeout=5).status
except Exception as e:
    out['ai'] = repr(e)
gateway = None
for line in open('/proc/net/route').read().splitlines()[1:]:
    f = line.split()
    if f[1] == '00000000':
        gateway = socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
targets = json.loads(os.environ.get('TARGETS', '[]'))
for host, port in targets + ([[gateway, 22], [gateway, 2375]] if gateway else []):
    try:
        socket.create_connection((host, port), timeout=2).close()
        out['%s:%d' % (host, port)] = 'reached'
    except OSError as e:
        out['%s:%d' % (host, port)] = 'blocked'
print(json.dumps(out))
`;

t.test('with AI_ENDPOINT a function reaches the AI node, and nothing else', async (t) => {
  const ai = await startTestHost([11434, 8080]);
  t.teardown(() => ai.stop());
  const other = await startTestHost([11434]);
  t.teardown(() => other.stop());
  const agentId = uniqueId('ai');
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_AGENT_ID: agentId, AI_ENDPOINT: `http://${ai.ip}:11434` } });
  const targets = JSON.stringify([
    [ai.ip, 8080],
    [other.ip, 11434],
  ]);
  const code = PROBE.replace("os.environ.get('TARGETS', '[]')", `'${targets}'`);
  const r = await h.invoke('ai-probe', { 'main.py': code }, { timeoutMs: 30_000 });
  t.equal(r.status, 'SUCCESS', r.stderr);
  const seen = JSON.parse(r.stdout) as Record<string, string | number>;
  t.equal(seen.endpoint, `http://${ai.ip}:11434`, 'the function is told where the AI node is');
  t.equal(seen.ai, 200, 'it reaches the AI node');
  t.equal(seen[`${ai.ip}:8080`], 'blocked', 'not another port on that host');
  t.equal(seen[`${other.ip}:11434`], 'blocked', 'not a second host');
  const gatewayKeys = Object.keys(seen).filter((k) => k.endsWith(':22') || k.endsWith(':2375'));
  t.equal(gatewayKeys.length, 2, 'the worker itself was tried');
  for (const k of gatewayKeys) t.equal(seen[k], 'blocked', `not the worker itself (${k})`);

  // The metadata service: checked in the installed rules, never by sending a packet there.
  const rules = await h.agent.egress!.rules();
  t.ok(rules.forward.some((r) => r.includes(`-d ${METADATA_ADDRESS}/32 -j DROP`)), rules.forward.join('\n'));
  t.match(rules.forward.at(-1), /-j DROP$/, 'everything else forwarded is dropped');
  t.ok(rules.forward.some((r) => r.includes(`-d ${ai.ip}/32 -p tcp -m tcp --dport 11434 -j RETURN`)), 'only the AI node passes');
  t.match(rules.input.at(-1), /-j DROP$/, 'nothing to the worker itself');
  const names = egressNames(agentId);
  const { stdout: docker_user } = await exec('iptables', ['-S', 'DOCKER-USER']);
  t.match(docker_user, new RegExp(`-i ${names.bridge} -j ${names.forward}`));

  // Removed at stop.
  await h.agent.stop();
  const { stdout: after } = await exec('iptables', ['-S', 'DOCKER-USER']);
  t.notMatch(after, names.forward, 'the jump is gone');
  t.rejects(exec('iptables', ['-S', names.forward]), 'the chain is gone');
  const nets = await docker.listNetworks({ filters: { name: [names.network] } });
  t.equal(nets.filter((n) => n.Name === names.network).length, 0, 'the network is gone');
});
