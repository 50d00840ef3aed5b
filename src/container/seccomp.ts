/**
 * The system calls a function may make: the project's own seccomp profile, in place of
 * Docker's default. It starts from the calls any program of the supported runtimes makes
 * (Docker's default allow list is the model) and leaves out what a function does not
 * need and what has been a way into the kernel:
 *
 * - io_uring (setup, enter, register): a second system call interface that seccomp cannot
 *   see into, and a long run of privilege escalations; Docker 20.10 allows it.
 * - ptrace, process_vm_readv/writev: a function debugs nothing.
 * - the 32-bit entry points (x86, x32): functions are 64-bit programs.
 * - socket families beyond UNIX, INET, INET6 and NETLINK (AF_ALG, AF_VSOCK, AF_RDS, ...).
 * - obsolete or unneeded calls: the old epoll calls, remap_file_pages, name_to_handle_at,
 *   fanotify_mark, memfd_secret.
 *
 * Everything else fails with EPERM; clone3 with ENOSYS, so that the C library falls back
 * to clone, whose namespace flags are refused (a function makes no namespace).
 */

const ALLOWED = [
  // files and folders
  'access', 'chdir', 'chmod', 'chown', 'close', 'close_range', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3',
  'pipe', 'pipe2', 'faccessat', 'faccessat2', 'fadvise64', 'fallocate', 'fchdir', 'fchmod', 'fchmodat', 'fchmodat2', 'fchown', 'fchownat',
  'fcntl', 'fdatasync', 'fgetxattr', 'flistxattr', 'flock', 'fremovexattr', 'fsetxattr', 'fstat', 'fstatfs', 'fsync',
  'ftruncate', 'futimesat', 'getcwd', 'getdents', 'getdents64', 'getxattr', 'lchown', 'lgetxattr', 'link', 'linkat',
  'listxattr', 'llistxattr', 'lremovexattr', 'lseek', 'lsetxattr', 'lstat', 'mkdir', 'mkdirat', 'mknod', 'mknodat',
  'newfstatat', 'open', 'openat', 'openat2', 'pread64', 'preadv', 'preadv2', 'pwrite64', 'pwritev', 'pwritev2', 'read',
  'readahead', 'readlink', 'readlinkat', 'readv', 'removexattr', 'rename', 'renameat', 'renameat2', 'rmdir', 'sendfile',
  'setxattr', 'splice', 'stat', 'statfs', 'statx', 'symlink', 'symlinkat', 'sync', 'sync_file_range', 'syncfs', 'tee',
  'truncate', 'umask', 'unlink', 'unlinkat', 'utime', 'utimensat', 'utimes', 'vmsplice', 'write', 'writev',
  'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch', 'cachestat',
  // memory
  'brk', 'madvise', 'membarrier', 'memfd_create', 'mincore', 'mlock', 'mlock2', 'mlockall', 'mmap', 'mprotect', 'mremap',
  'msync', 'munlock', 'munlockall', 'munmap', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'mseal', 'map_shadow_stack',
  // processes, threads, signals, time
  'arch_prctl', 'capget', 'capset', 'execve', 'execveat', 'exit', 'exit_group', 'fork', 'vfork', 'futex', 'futex_waitv',
  'futex_wake', 'futex_wait', 'futex_requeue', 'get_robust_list', 'set_robust_list', 'get_thread_area', 'set_thread_area',
  'set_tid_address', 'getcpu', 'getegid', 'geteuid', 'getgid', 'getgroups', 'getpgid', 'getpgrp', 'getpid', 'getppid',
  'getpriority', 'getresgid', 'getresuid', 'getrlimit', 'getrusage', 'getsid', 'gettid', 'getuid', 'kill', 'tgkill',
  'tkill', 'pidfd_open', 'pidfd_send_signal', 'prctl', 'prlimit64', 'setrlimit', 'rseq', 'restart_syscall',
  'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn', 'rt_sigsuspend',
  'rt_sigtimedwait', 'rt_tgsigqueueinfo', 'sigaltstack', 'signalfd', 'signalfd4', 'pause', 'wait4', 'waitid',
  'setfsgid', 'setfsuid', 'setgid', 'setgroups', 'setpgid', 'setpriority', 'setregid', 'setresgid', 'setresuid',
  'setreuid', 'setsid', 'setuid', 'sched_getaffinity', 'sched_getattr', 'sched_getparam', 'sched_get_priority_max',
  'sched_get_priority_min', 'sched_getscheduler', 'sched_rr_get_interval', 'sched_setaffinity', 'sched_setattr',
  'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'landlock_add_rule', 'landlock_create_ruleset',
  'landlock_restrict_self', 'ioprio_get', 'ioprio_set', 'modify_ldt', 'process_mrelease', 'getrandom', 'sysinfo', 'uname',
  'alarm', 'getitimer', 'setitimer', 'clock_adjtime', 'adjtimex', 'clock_getres', 'clock_gettime', 'clock_nanosleep',
  'gettimeofday', 'nanosleep', 'time', 'times', 'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime',
  'timer_settime', 'timerfd_create', 'timerfd_gettime', 'timerfd_settime',
  // waiting and events
  'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'eventfd', 'eventfd2',
  'poll', 'ppoll', 'pselect6', 'select',
  // asynchronous I/O of the classic kind (not io_uring)
  'io_cancel', 'io_destroy', 'io_getevents', 'io_pgetevents', 'io_setup', 'io_submit',
  // sockets (socket itself is allowed per family, below)
  'accept', 'accept4', 'bind', 'connect', 'getpeername', 'getsockname', 'getsockopt', 'listen', 'recvfrom', 'recvmmsg',
  'recvmsg', 'sendmmsg', 'sendmsg', 'sendto', 'setsockopt', 'shutdown', 'socketpair',
  // System V and POSIX IPC (inside the container's own IPC namespace)
  'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive', 'mq_timedsend', 'mq_unlink', 'msgctl', 'msgget', 'msgrcv',
  'msgsnd', 'semctl', 'semget', 'semop', 'semtimedop', 'shmat', 'shmctl', 'shmdt', 'shmget',
  'ioctl',
] as const;

/** The calls this profile refuses that Docker 20.10's default allows: what the tests check. */
export const REFUSED_BEYOND_DOCKER = ['io_uring_setup', 'io_uring_enter', 'io_uring_register', 'ptrace', 'process_vm_readv', 'process_vm_writev'] as const;

const AF = { UNIX: 1, INET: 2, INET6: 10, NETLINK: 16 } as const;
/** clone's namespace flags: NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWCGROUP. */
const CLONE_NAMESPACES = 0x7e020000;
/** personality(2) values programs use: the default, UNAME26, ADDR_NO_RANDOMIZE (and with UNAME26), and the query. */
const PERSONALITIES = [0, 8, 0x20000, 0x20008, 0xffffffff];
const EPERM = 1;
const ENOSYS = 38;

interface Rule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
}

export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ERRNO';
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: Rule[];
}

export function seccompProfile(): SeccompProfile {
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
    syscalls: [
      { names: [...ALLOWED], action: 'SCMP_ACT_ALLOW' },
      ...Object.values(AF).map((family) => ({ names: ['socket'], action: 'SCMP_ACT_ALLOW' as const, args: [{ index: 0, value: family, op: 'SCMP_CMP_EQ' }] })),
      ...PERSONALITIES.map((p) => ({ names: ['personality'], action: 'SCMP_ACT_ALLOW' as const, args: [{ index: 0, value: p, op: 'SCMP_CMP_EQ' }] })),
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NAMESPACES, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ],
  };
}

/** The profile as the engine takes it in a container's SecurityOpt (`seccomp=<json>`). */
export function seccompOption(): string {
  return `seccomp=${JSON.stringify(seccompProfile())}`;
}

export const ALLOWED_SYSCALLS: readonly string[] = ALLOWED;
