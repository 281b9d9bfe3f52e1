// Terminal input for the app: keystrokes must reach the guest in the order they were typed.

export /** Keystrokes go out one send at a time, in order; what is typed meanwhile goes in the next. */
class InputQueue {
  private queued = "";
  private sending = false;
  constructor(private readonly send: (data: string) => Promise<void>) {}

  push(data: string) {
    this.queued += data;
    void this.flush();
  }

  private async flush() {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queued) {
        const chunk = this.queued;
        this.queued = "";
        await this.send(chunk);
      }
    } finally {
      this.sending = false;
    }
  }
}
