/*
 * The runner's wire format, in one place: frames of [u32 big-endian length][u8 type]
 * [payload], where the length counts the type byte and the payload; text payloads are
 * NUL-terminated "key=value" strings (a key may repeat: arg, env). Mirrored once in
 * TypeScript (src/container/runnerProtocol.ts) and once in the zygote (runner/zygote.py);
 * test/unit/runnerProtocol.test.ts fails when the three disagree.
 */
#ifndef NANOGRID_PROTOCOL_H
#define NANOGRID_PROTOCOL_H

/* Longest frame either side accepts; kept output goes in chunks of FRAME_CHUNK. */
#define FRAME_MAX (4 * 1024 * 1024)
#define FRAME_CHUNK (1024 * 1024)

/* agent -> runner */
#define FRAME_RUN 'R'      /* mode (exec, zygote, handler), cwd, uid, gid, timeout_ms, out_limit, hold, stdin, spool_*, handler_key, ctx, arg..., env... */
#define FRAME_GO 'G'       /* release the held run */
#define FRAME_KILL 'K'     /* kill the current run now */
#define FRAME_PING 'P'
#define FRAME_ZYGOTE 'Z'   /* start the zygote (a --lazy runner's) once the current run, if any, ends */

/* runner -> agent */
#define FRAME_HELLO 'H'    /* zygote=<state>, on connect and whenever it changes */
#define FRAME_STARTED 'S'  /* pid= (in the container's namespace) */
#define FRAME_EXIT 'E'     /* code, signal, timed_out, duration_us, out_total, err_total, out_spooled, err_spooled, clean, leftovers; handler mode: handler, init, init_us, answer, handler_pid */
#define FRAME_STDOUT 'o'   /* kept stdout bytes, one chunk */
#define FRAME_STDERR 'e'   /* kept stderr bytes, one chunk */
#define FRAME_RETURN 'r'   /* handler mode: the call's answer (its JSON value or error), one chunk */
#define FRAME_DONE 'D'     /* the run's answer is complete */
#define FRAME_FAILED 'F'   /* error=: the run could not start */
#define FRAME_PONG 'p'

/* runner -> zygote: FRAME_RUN (cwd, uid, gid, hold, arg..., env...) with stdin, stdout, stderr and the hold pipe as SCM_RIGHTS */
/* zygote -> runner */
#define ZYGOTE_READY 'H'   /* the zygote is ready for runs */
#define ZYGOTE_PID 'P'     /* pid= of the run's first process */
#define ZYGOTE_EXIT 'X'    /* status= (the raw wait status) */
#define ZYGOTE_FAILED 'F'  /* error=: the fork failed */

/* runner -> handler (handler mode, on the handler's fd 3) */
#define HANDLER_CALL 'C'   /* input= (a file, or empty), ctx= (JSON) */
/* handler -> runner */
#define HANDLER_READY 'I'  /* its module is imported: the init is over */
#define HANDLER_VALUE 'V'  /* the call returned: its value as JSON */
#define HANDLER_ERROR 'X'  /* the call raised: {"errorType", "errorMessage"} as JSON */

#endif
