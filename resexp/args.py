"""The command-line convention of every `resexp` command: a bad flag or argument is one line naming it,
exit 2 (cli.main prints UserError), never argparse's usage text and SystemExit."""
import argparse

from .errors import UserError


class Parser(argparse.ArgumentParser):
    def __init__(self, command: str, description: str = ""):
        super().__init__(prog=f"resexp {command}", description=description)

    def error(self, message):
        raise UserError(f"{self.prog}: {message}; see {self.prog} --help")
