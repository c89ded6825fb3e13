import signal
import threading

from causaldiffae.signals import restore_handlers, swap_handlers


def test_swaps_python_handlers_only_and_puts_them_back():
    def mine(signum, frame):
        pass

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as for a job whose parent ignores it
    try:
        previous = swap_handlers(mine)
        assert set(previous) == {signal.SIGINT}  # the ignored SIGTERM stays ignored
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        restore_handlers(previous)
        assert signal.getsignal(signal.SIGINT) is before[signal.SIGINT]
        elsewhere = []
        thread = threading.Thread(target=lambda: elsewhere.append(swap_handlers(mine)))
        thread.start()
        thread.join()
        assert elsewhere == [{}]  # off the main thread Python cannot install handlers
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
