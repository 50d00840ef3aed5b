/** How a container's CPU follows its memory, as Lambda gives 1,769 MB one vCPU. */
export interface CpuPolicy {
  /** Memory that earns one vCPU; 0 turns the hard limit off (weights stay). */
  mbPerVcpu: number;
  /** The least CPU a container is limited to, so a small function still starts promptly. */
  floorVcpu: number;
}

export const DEFAULT_CPU_POLICY: CpuPolicy = { mbPerVcpu: 1769, floorVcpu: 0.25 };

export interface CpuLimits {
  /** The hard limit (CFS quota), in billionths of a CPU; 0 for none. */
  nanoCpus: number;
  /** The weight under contention (cgroup v1 cpu.shares; Docker maps it to v2's cpu.weight). */
  shares: number;
}

/**
 * A container's CPU for `memoryMb`: a weight in proportion to its memory (1024 per vCPU
 * earned), so under contention each container gets its share and no more; and a hard
 * limit of the vCPUs it earned, at least the floor and at most the host's CPUs, so a
 * CPU-hungry function cannot take the cores a trivial one is waiting for.
 */
export function cpuFor(memoryMb: number, policy: CpuPolicy, hostCpus: number): CpuLimits {
  const mbPerVcpu = policy.mbPerVcpu > 0 ? policy.mbPerVcpu : DEFAULT_CPU_POLICY.mbPerVcpu;
  const earned = memoryMb / mbPerVcpu;
  // cpu.shares below 2 is refused by the kernel; above 262144 too.
  const shares = Math.min(262_144, Math.max(2, Math.round(1024 * earned)));
  if (policy.mbPerVcpu <= 0) return { nanoCpus: 0, shares };
  const vcpus = Math.min(hostCpus, Math.max(policy.floorVcpu, earned, 0.01));
  return { nanoCpus: Math.round(vcpus * 1e9), shares };
}
