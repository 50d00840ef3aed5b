import { AutoScalingClient, CompleteLifecycleActionCommand, RecordLifecycleActionHeartbeatCommand } from '@aws-sdk/client-auto-scaling';
import type { Logger } from '../core/log.js';
import type { Imds } from './imds.js';

export interface LifecycleTarget {
  groupName: string;
  hookName: string;
  instanceId: string;
}

/** What /status shows of the lifecycle action while a drain holds it. */
export interface LifecycleProgress {
  hookName: string;
  groupName: string | null;
  instanceId: string | null;
  heartbeats: number;
  completedAt: string | null;
  lastError: string | null;
}

/**
 * The termination lifecycle action of this instance: heartbeats keep the group waiting
 * while runs finish, and CONTINUE lets it terminate once drained. The instance is named by
 * id (IMDS gives no action token), the group by the instance's aws:autoscaling:groupName
 * tag unless configured. The SDK's standard retry (jittered) covers each call.
 */
export class LifecycleAction {
  readonly progress: LifecycleProgress;
  private target: LifecycleTarget | undefined;

  constructor(
    private readonly opts: { client: AutoScalingClient; imds: Imds; hookName: string; groupName?: string; log: Logger },
  ) {
    this.progress = { hookName: opts.hookName, groupName: opts.groupName ?? null, instanceId: null, heartbeats: 0, completedAt: null, lastError: null };
  }

  async heartbeat(): Promise<boolean> {
    return this.call('heartbeat', async (t) => {
      await this.opts.client.send(new RecordLifecycleActionHeartbeatCommand({ AutoScalingGroupName: t.groupName, LifecycleHookName: t.hookName, InstanceId: t.instanceId }));
      this.progress.heartbeats++;
    });
  }

  async complete(): Promise<boolean> {
    return this.call('complete', async (t) => {
      await this.opts.client.send(
        new CompleteLifecycleActionCommand({ AutoScalingGroupName: t.groupName, LifecycleHookName: t.hookName, InstanceId: t.instanceId, LifecycleActionResult: 'CONTINUE' }),
      );
      this.progress.completedAt = new Date().toISOString();
      this.opts.log.info({ tag: 'FLEET', ...t }, 'lifecycle action completed: CONTINUE');
    });
  }

  private async call(op: string, fn: (t: LifecycleTarget) => Promise<void>): Promise<boolean> {
    try {
      await fn(await this.resolveTarget());
      this.progress.lastError = null;
      return true;
    } catch (err) {
      this.progress.lastError = `${op}: ${String(err)}`;
      this.opts.log.error({ tag: 'FLEET', op, err, reason: 'LIFECYCLE_CALL_FAILED' }, 'lifecycle call failed');
      return false;
    }
  }

  private async resolveTarget(): Promise<LifecycleTarget> {
    if (this.target) return this.target;
    const instanceId = (await this.opts.imds.get('instance-id'))?.trim();
    if (!instanceId) throw new Error('instance metadata gave no instance-id');
    let groupName = this.opts.groupName;
    if (!groupName) {
      groupName = (await this.opts.imds.get('tags/instance/aws:autoscaling:groupName'))?.trim();
      if (!groupName) throw new Error('no Auto Scaling group: set NANOGRID_ASG_NAME, or allow instance tags in metadata');
    }
    this.target = { groupName, hookName: this.opts.hookName, instanceId };
    this.progress.groupName = groupName;
    this.progress.instanceId = instanceId;
    return this.target;
  }
}
