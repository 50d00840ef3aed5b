/** How a container's CPU follows its memory, as Lambda gives 1,769 MB one vCPU. */
export interface CpuPolicy {
  /** Memory that earns one vCPU; 0 turns the hard limit off (weights stay). */
  mbPerVcpu: number;
  /**
   * The least CPU a container is limited to. A strict proportion throttles small functions
   * hard (a 128 MB one would get 7% of a CPU, and a Python start alone would take several
   * CFS periods); one vCPU keeps every start fast while no container, however small its
   * memory, can take more than one core from its neighbours. Under contention the weights
   * still share the CPU in proportion to memory.
   */
  floorVcpu: number;
}

export const DEFAULT_CPU_POLICY: CpuPolicy = { mbPerVcpu: 1769, floorVcpu: 1 };

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
