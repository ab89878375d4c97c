"""What every benchmark reports with: its result table (Markdown, with the machine it ran on) and `timed`."""
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List


def machine():
    """CPU model, cores, torch version and threads: the context of a table's absolute times."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


@dataclass
class Table:
    """One benchmark's result; ``name`` is its file name (OUT/NAME.md) and its name on the command line."""

    name: str
    title: str
    header: List[str]
    rows: List[list]
    note: str = ""
    machine: str = field(default_factory=machine)

    def markdown(self):
        lines = [f"### {self.title}", "", f"Machine: {self.machine}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "---|" * len(self.header))
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"


def publish(table, out):
    """Print the table and write it to OUT/NAME.md."""
    text = table.markdown()
    print(text, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{table.name}.md").write_text(text)


def timed(fn, repeats):
    """Median wall time of fn() over repeats (after one warm-up call) and fn's last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
