import t from 'tap';
import { ulimitsFor, DEFAULT_LIMITS, securityOptions } from '../../src/container/limits.js';
import { ALLOWED_SYSCALLS, REFUSED_BEYOND_DOCKER, seccompProfile } from '../../src/container/seccomp.js';

t.test('the profile refuses by default, and allows no call it names as refused', async (t) => {
  const p = seccompProfile();
  t.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
  t.equal(p.defaultErrnoRet, 1, 'EPERM');
  t.same(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'], 'no 32-bit entry points');
  const allowed = new Set(p.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names));
  for (const name of [...REFUSED_BEYOND_DOCKER, 'keyctl', 'bpf', 'userfaultfd', 'unshare', 'setns', 'mount', 'perf_event_open', 'kexec_load', 'init_module']) t.notOk(allowed.has(name), name);
  t.equal(new Set(ALLOWED_SYSCALLS).size, ALLOWED_SYSCALLS.length, 'no name twice');
  t.same(p.syscalls.find((r) => r.names.includes('clone3')), { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }, 'clone3 is ENOSYS: the C library falls back to clone');
  const clone = p.syscalls.find((r) => r.names[0] === 'clone');
  t.same(clone?.args, [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }], 'clone only without namespace flags');
  const families = p.syscalls.filter((r) => r.names[0] === 'socket').map((r) => r.args![0]!.value);
  t.same(families, [1, 2, 10, 16], 'UNIX, INET, INET6, NETLINK');
});

t.test('limits: soft equals hard, no core; the engine gets the profile as JSON', async (t) => {
  t.same(ulimitsFor(DEFAULT_LIMITS), [
    { Name: 'core', Soft: 0, Hard: 0 },
    { Name: 'nofile', Soft: 1024, Hard: 1024 },
    { Name: 'nproc', Soft: 512, Hard: 512 },
    { Name: 'sigpending', Soft: 1024, Hard: 1024 },
    { Name: 'msgqueue', Soft: 819200, Hard: 819200 },
  ]);
  const [nnp, seccomp] = securityOptions(DEFAULT_LIMITS);
  t.equal(nnp, 'no-new-privileges');
  t.same(JSON.parse(seccomp!.slice('seccomp='.length)), seccompProfile());
  t.same(securityOptions({ ...DEFAULT_LIMITS, seccomp: 'docker-default' }), ['no-new-privileges'], "dockerd's own profile when asked");
});
