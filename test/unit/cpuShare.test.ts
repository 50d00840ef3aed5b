import t from 'tap';
import { cpuFor, DEFAULT_CPU_POLICY } from '../../src/container/cpuShare.js';

t.test('CPU follows memory: 1,769 MB earns one vCPU, weight and limit alike', async (t) => {
  t.same(cpuFor(1769, DEFAULT_CPU_POLICY, 8), { nanoCpus: 1e9, shares: 1024 });
  t.same(cpuFor(3538, DEFAULT_CPU_POLICY, 8), { nanoCpus: 2e9, shares: 2048 });
  const small = cpuFor(128, DEFAULT_CPU_POLICY, 8);
  t.equal(small.shares, Math.round((1024 * 128) / 1769), 'a small function weighs in proportion');
  t.equal(small.nanoCpus, 1e9, 'but is limited to no less than the floor (one vCPU)');
  t.equal(cpuFor(128, { mbPerVcpu: 1769, floorVcpu: 0.01 }, 8).nanoCpus, Math.round((128 / 1769) * 1e9), 'a strict proportion with a tiny floor');
});

t.test('the limit never exceeds the host, the weight stays within the kernel range', async (t) => {
  t.equal(cpuFor(65_536, DEFAULT_CPU_POLICY, 2).nanoCpus, 2e9);
  t.equal(cpuFor(1, DEFAULT_CPU_POLICY, 2).shares, 2);
  t.equal(cpuFor(128, DEFAULT_CPU_POLICY, 0.5).nanoCpus, 0.5e9, 'a host smaller than the floor');
  t.equal(cpuFor(1_048_576, { mbPerVcpu: 1, floorVcpu: 0.25 }, 2).shares, 262_144);
});

t.test('mbPerVcpu 0 turns the hard limit off and keeps the weight', async (t) => {
  t.same(cpuFor(1769, { mbPerVcpu: 0, floorVcpu: 0.25 }, 4), { nanoCpus: 0, shares: 1024 });
});

t.test('a custom ratio and floor', async (t) => {
  t.equal(cpuFor(512, { mbPerVcpu: 1024, floorVcpu: 0.1 }, 4).nanoCpus, 0.5e9);
  t.equal(cpuFor(64, { mbPerVcpu: 1024, floorVcpu: 0.1 }, 4).nanoCpus, 0.1e9);
});
