import { readFileSync } from 'node:fs';
import t from 'tap';

// The suite runs on the Node the project pins (ops/node-version, Node 24 LTS, which
// ops/setup.sh provides where the machine's is older), the one the artifact is built for.
const [pinned] = readFileSync(new URL('../../ops/node-version', import.meta.url), 'utf8').trim().split(/\s+/);
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };

t.test('the tests run on the pinned Node, and engines asks for its major', async (t) => {
  t.equal(process.versions.node, pinned, `node ${process.versions.node} (pinned ${pinned})`);
  t.equal(pkg.engines.node, `>=${pinned!.split('.')[0]}`);
});
