import PQueue from 'p-queue';

/**
 * An actor's mailbox: posted steps run one at a time, in order. A step is a synchronous
 * decision over the actor's state; slow I/O runs outside, on a container whose state a
 * step has already moved. A step that returns a promise is refused, so no step can hold
 * the mailbox across an await.
 */
export class Mailbox {
  private readonly queue = new PQueue({ concurrency: 1 });

  post<T>(step: () => T): Promise<T> {
    return this.queue.add(() => {
      const out = step();
      if (out instanceof Promise) throw new Error('a mailbox step must be synchronous');
      return out;
    }) as Promise<T>;
  }
}
