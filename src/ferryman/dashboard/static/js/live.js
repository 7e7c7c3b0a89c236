// Polling, paused while the tab is hidden, and the "live" indicator in the top bar (fed by
// every API call).

const listeners = new Set();

export function onHeartbeat(listener) {
  listeners.add(listener);
}

export function heartbeat(ok, error) {
  for (const listener of listeners) listener(ok, error);
}

/**
 * Call fn now and every intervalMs after it finishes. Returns stop(), with stop.now() to
 * refresh at once (after a change). Errors go to the indicator, never unhandled.
 */
export function poll(intervalMs, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (error) {
        // API failures show in the live indicator; anything else is a bug of the page.
        if (error?.status === undefined) console.error('refresh failed:', error);
      }
    }
    if (!stopped) timer = setTimeout(tick, intervalMs);
  };
  const wake = () => {
    if (!document.hidden && timer !== null) {
      clearTimeout(timer);
      tick();
    }
  };
  document.addEventListener('visibilitychange', wake);
  tick();
  const stop = () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    document.removeEventListener('visibilitychange', wake);
  };
  stop.now = () => {
    if (timer !== null) { clearTimeout(timer); tick(); }
  };
  return stop;
}
