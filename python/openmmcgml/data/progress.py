"""Progress reporting for long runs: ``progress=`` is None/False (silent), True (a tqdm bar) or a
callable that receives ``(done, total)``.

Examples
--------
>>> seen = []
>>> report = progress_reporter(lambda done, total: seen.append((done, total)), 10)
>>> report(4); report(10); report.close()
>>> seen
[(4, 10), (10, 10)]
"""

__all__ = ["progress_reporter"]


class _Silent:
    def __call__(self, done):
        pass

    def close(self):
        pass


class _Callback:
    def __init__(self, function, total):
        self.function = function
        self.total = total

    def __call__(self, done):
        self.function(done, self.total)

    def close(self):
        pass


class _Bar:
    def __init__(self, total, description):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=description, unit="frame")
        self.done = 0

    def __call__(self, done):
        self.bar.update(done - self.done)
        self.done = done

    def close(self):
        self.bar.close()


def progress_reporter(progress, total, description=""):
    """A reporter called with the number of items done so far; call ``close()`` at the end.

    Parameters
    ----------
    progress : None, bool or callable
        None/False: nothing; True: a tqdm progress bar (plain text if tqdm is missing);
        callable: called as ``progress(done, total)``.
    total : int
        Number of items in all.
    description : str, optional
        Label of the bar.
    """
    if progress is None or progress is False:
        return _Silent()
    if callable(progress):
        return _Callback(progress, total)
    try:
        return _Bar(total, description)
    except ImportError:
        return _Callback(lambda done, total: print(f"{description}: {done}/{total}", flush=True), total)
