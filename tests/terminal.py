"""What a terminal shows for the bytes a program wrote to it: enough of a VT100 for rich's live
display (carriage return, newline, erase line, cursor up/down, colours ignored).

    screen = Terminal().feed(output)
    screen.lines      # what is on the screen at the end (scrollback included)
    screen.seen       # every line that was ever on the screen, also those erased or overwritten since
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])|\x1b\][^\x07]*\x07|\r|\n|[^\x1b\r\n]+")


class Terminal:
    """A screen of unlimited height: the cursor's row and column, and every line ever shown."""

    def __init__(self) -> None:
        self.lines: list[str] = [""]
        self.row = self.col = 0
        self.seen: list[str] = []

    def _put(self, text: str) -> None:
        line = self.lines[self.row].ljust(self.col)
        self.lines[self.row] = line[: self.col] + text + line[self.col + len(text) :]
        self.col += len(text)

    def _erase(self) -> None:
        if self.lines[self.row].strip():
            self.seen.append(self.lines[self.row].rstrip())
        self.lines[self.row] = ""

    def feed(self, output: str) -> Terminal:
        """Apply `output` (the tty turns each newline into carriage return and line feed)."""
        for match in _CONTROL.finditer(output):
            token, params, command = match.group(0), match.group(1), match.group(2)
            if token == "\r":
                self.col = 0
            elif token == "\n":
                self.row, self.col = self.row + 1, 0
                if self.row == len(self.lines):
                    self.lines.append("")
            elif command == "K":
                self._erase()
            elif command in ("A", "B"):
                step = int(params or 1)
                self.row = max(0, self.row - step) if command == "A" else min(len(self.lines) - 1, self.row + step)
            elif command == "G":
                self.col = int(params or 1) - 1
            elif command is None and not token.startswith("\x1b"):
                self._put(token)
        self.seen += [line.rstrip() for line in self.lines if line.strip()]
        return self
