import PQueue from 'p-queue';

/**
 * An actor's mailbox: posted steps run one at a time, in order. A step should be a
 * short decision over the actor's state; slow I/O runs outside, on a container whose
 * state the step has already claimed.
 */
export class Mailbox {
  private readonly queue = new PQueue({ concurrency: 1 });

  post<T>(step: () => T | Promise<T>): Promise<T> {
    return this.queue.add(step) as Promise<T>;
  }

  get pending(): number {
    return this.queue.size + this.queue.pending;
  }
}
