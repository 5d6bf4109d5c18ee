"""Find the image references in a Dockerfile, with the exact position of each.

This is a scanner for BuildKit's Dockerfile syntax (moby/buildkit
frontend/dockerfile/parser), written to give what a byte-exact rewrite needs and
what general-purpose parsers do not: the offset of every character of an image
token in the original text. It follows BuildKit on the points that matter here:

- parser directives (``# escape=``) are read only at the very top of the file, blanks
  before the ``#`` allowed; the frontend image of ``# syntax=`` is an image reference, read
  where BuildKit's ``DetectSyntax`` reads it (the ``#`` in the first column);
- instructions are case-insensitive; a line ending in the escape character
  (optionally followed by blanks) continues; inside a continuation, comment lines
  and empty lines are dropped, and leading blanks of continuation lines are kept;
- heredoc bodies (``RUN <<EOF``, ``COPY <<-"EOF"``) are data, never instructions;
- ``FROM`` takes build args only from the global ``ARG``s before the first ``FROM``;
- stage names are matched case-insensitively by ``--from``, as written by ``FROM``; a
  number is a stage index only in ``COPY --from=0`` (``FROM 0`` and ``RUN --mount=from=0``
  name the image ``0``);
  ``scratch`` is no image;
- what BuildKit refuses is reported, not guessed at: a FROM with two arguments (``FROM as x``),
  a stage name outside ``[a-z][a-z0-9-_.]*``, ``ADD --from``, a bad or repeated directive.

Most lines of a Dockerfile are one-line instructions that name no image (``RUN``, ``ENV``,
``WORKDIR``...), so :func:`scan` does not walk them character by character. BuildKit continues
a line only when it ends in the escape character, blanks aside (``trimContinuationCharacter``),
so a line that does not is a whole instruction whose characters are consecutive in the text:
its words are split with one regular expression. A heredoc opens only at a word that matches
``reHeredoc``, which holds ``<<``, so only a line with ``<<`` is searched for one. And only the
instructions that can name an image (``FROM``, ``ARG``, and the flags of ``COPY``, ``ADD``,
``RUN``, and these only when a ``--`` flag follows the keyword) are split into words at all; a
line that continues is joined as text, and the offset of each character listed only for those.
:func:`scan_exact` reads every line the exact way; the tests check that both give the same
result.

The scanner never writes; see :mod:`pinner.rewrite`.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from pinner.errors import ReferenceError_
from pinner.reference import parse_reference
from pinner.scan.result import Found, Scan, Skipped

# BuildKit directiveRegexp, matched after the '#' and the spaces after it; Go's \s is ASCII only.
_DIRECTIVE_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")
# Go's unicode.IsSpace, with which BuildKit trims a line before reading a directive in it.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
# BuildKit reHeredoc: an optional fd number, <<, an optional '-', then a word with no '<'
# (so a here-string <<< is no heredoc).
_HEREDOC_RE = re.compile(r"[0-9]*<<(-?)([^<]+)")
# BuildKit reads only these directives; an unknown name ends the directive block.
_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_VARIABLE_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_INDEX_RE = re.compile(r"[0-9]{1,6}")  # a stage index: ASCII digits, and never huge
# BuildKit instructions/parse.go validStageName, matched against the lower-cased name.
_STAGE_NAME_RE = re.compile(r"[a-z][a-z0-9\-_.]*")
_ARG_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})
# The instructions that can name an image or set a build arg; the scanner reads no other.
# Of COPY, ADD and RUN it reads only the leading --flags.
_READ_INSTRUCTIONS = frozenset({"FROM", "ARG", "COPY", "ADD", "RUN"})
_FLAGS_ONLY = frozenset({"COPY", "ADD", "RUN"})
_WORD_RE = re.compile(r"[^ \t]+")  # BuildKit splits instruction words on blanks only
# A comment on the line right before an instruction that tells pin to leave it alone.
_IGNORE_RE = re.compile(r"#\s*pin:\s*ignore\b.*")
_BLANKS = " \t"
# Ends the reason of what BuildKit refuses: pin reports it as an error, since the build fails.
_REFUSED = "; docker build refuses it too"


# A NamedTuple, not a frozen dataclass: one is made per word, and a tuple is made ~3x faster.
_new = tuple.__new__


class _Word(NamedTuple):
    text: str
    # A range when the word is on one line (slicing it is cheap), a tuple when a line
    # continuation splits it.
    offsets: Sequence[int]


class _Arg:
    """A build argument that an ARG declares (a plain class: a dataclass costs ~1 ms of every
    start-up to build)."""

    __slots__ = ("ignored", "line", "name", "simple", "value")

    def __init__(self, name: str, value: _Word | None, simple: bool, line: int) -> None:
        self.name = name
        self.value = value  # None: no default value
        self.simple = simple  # False when the value is quoted in a way we do not rewrite
        self.line = line
        self.ignored = False  # its ARG line is preceded by "# pin: ignore"


class _Instruction(NamedTuple):
    keyword: str  # upper case
    words: list[_Word]  # the arguments, split on blanks (see _instructions)
    line: int
    ignored: bool = False  # preceded by a "# pin: ignore" comment


class _Lines:
    """Physical lines of a text, each as (start offset, content without its newline)."""

    def __init__(self, text: str) -> None:
        raw = text.split("\n")
        if raw[-1] == "":
            raw.pop()  # a final newline ends the last line; it starts no new one
        self.starts: list[int] = list(itertools.accumulate((len(r) + 1 for r in raw), initial=0))
        self.starts.pop()
        self.contents = [r[:-1] if r.endswith("\r") else r for r in raw] if "\r" in text else raw

    def line_of(self, offset: int) -> int:
        """1-based line number of the character at *offset*."""
        return bisect.bisect_right(self.starts, offset)


def _directives(contents: list[str]) -> tuple[str, tuple[int, str] | None]:
    """The escape character the directives at the top of the file set, and the (0-based line,
    message) of the directive BuildKit refuses, if any.

    BuildKit (parser.go ``Parse``, ``processLine``) trims the leading whitespace of a line
    before it looks for a directive there, so `` # escape=` `` counts; then
    (directives.go ``ParseLine``) the line must start with ``#``, and the first line that
    is no directive of a known name (a blank line, a comment, an instruction) ends them.
    BuildKit fails the whole parse on a directive read twice ("only one escape parser
    directive can be used") and on an escape other than a backslash or a backtick.
    """
    escape = "\\"
    seen: set[str] = set()
    for number, content in enumerate(contents):
        line = content.lstrip(_GO_SPACE)
        if not line.startswith("#"):
            break
        match = _DIRECTIVE_RE.fullmatch(line[1:].lstrip(_GO_SPACE))
        if match is None or match.group(1).lower() not in _DIRECTIVES:
            break
        name, value = match.group(1).lower(), match.group(2)
        if name in seen:
            return escape, (number, f"a second `# {name}=` directive{_REFUSED}: keep one")
        seen.add(name)
        if name == "escape":
            if value not in ("\\", "`"):
                problem = f"the escape directive sets {value!r}{_REFUSED}: use \\ or `"
                return escape, (number, problem)
            escape = value
    return escape, None


def _is_comment(content: str) -> bool:
    return content.lstrip(_GO_SPACE).startswith("#")


def _continues(content: str, escape: str) -> int | None:
    """Index of the continuation escape when *content* ends with one, else None.

    An escaped escape (``path\\``) is no continuation (BuildKit's trailing-backslash test).
    """
    stripped = content.rstrip(_BLANKS)
    run = len(stripped) - len(stripped.rstrip(escape))
    if run % 2 == 1:
        return len(stripped) - 1
    return None


def _words(logical: str, offsets: Sequence[int], *, flags_only: bool) -> list[_Word]:
    """The words after the keyword of *logical*, whose characters are at *offsets*.

    With *flags_only*, only the leading words that start with ``--``: all that :func:`_flags`
    reads (it stops at ``--`` itself too).
    """
    words: list[_Word] = []
    matches = _WORD_RE.finditer(logical)
    next(matches)  # the keyword
    for match in matches:
        start, end = match.span()
        word = logical[start:end]
        if flags_only and not word.startswith("--"):
            break
        # tuple.__new__: a _Word without the call of its Python __new__ (a scan's hot loop).
        words.append(_new(_Word, (word, offsets[start:end])))
    return words


def _split_words(chars: str, offsets: list[int]) -> list[_Word]:
    words: list[_Word] = []
    i = 0
    while i < len(chars):
        if chars[i] in _BLANKS:
            i += 1
            continue
        j = i
        while j < len(chars) and chars[j] not in _BLANKS:
            j += 1
        words.append(_Word(chars[i:j], tuple(offsets[i:j])))
        i = j
    return words


def _shell_words(text: str, escape: str) -> list[str]:
    """*text* split into words as a shell would, quotes kept: enough to find heredoc markers."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if char == escape and quote != "'" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in _BLANKS:
            if current:
                words.append("".join(current))
                current = []
            i += 1
            continue
        current.append(char)
        i += 1
    if current:
        words.append("".join(current))
    return words


def _heredocs(logical: str, escape: str) -> list[tuple[str, bool]]:
    """The heredocs an instruction opens: (terminator, whether leading tabs are stripped)."""
    words = _shell_words(logical, escape)
    if words and words[0].upper() == "ONBUILD":
        words = words[1:]  # ONBUILD RUN <<EOF opens a heredoc too
    if not words or words[0].upper() not in _HEREDOC_INSTRUCTIONS:
        return []
    args = words[1:]
    while args and args[0].startswith("--"):
        args = args[1:]
    if args and args[0].startswith("["):
        return []  # the JSON form has no heredocs
    names: list[tuple[str, bool]] = []
    for word in args:
        match = _HEREDOC_RE.fullmatch(word)
        if match is None:
            continue
        name = match.group(2).replace('"', "").replace("'", "")
        if name:
            names.append((name, match.group(1) == "-"))
    return names


def _instructions(
    text: str, lines: _Lines, *, exact: bool, escape: str | None = None
) -> Iterator[_Instruction]:
    """The instructions of *text*, in order; heredoc bodies and comments are no instructions.

    Unless *exact*, an instruction that the scanner does not read is not yielded, only the
    words that it reads are split, and a line that is a whole instruction is not walked
    character by character (see the module docstring). *escape*: the escape character that
    the directives set, when the caller has read them already.
    """
    first = 1 if text.startswith("\ufeff") else 0
    contents = lines.contents
    if first and contents:
        # A BOM belongs to the first line's bytes but not to its content.
        contents = [contents[0][1:], *contents[1:]]
    if escape is None:
        escape = _directives(contents)[0]
    index = 0
    total = len(contents)
    starts = lines.starts
    ignore_next = False
    while index < total:
        content = contents[index]
        index += 1
        # BuildKit trims an instruction's first line, and tests for a comment, with Go's
        # unicode.IsSpace (trimLeadingWhitespace, isComment): a no-break space counts.
        stripped = content.lstrip(_GO_SPACE)
        if not stripped:
            ignore_next = False
            continue
        if stripped[0] == "#":
            ignore_next = _IGNORE_RE.fullmatch(stripped.rstrip(_BLANKS)) is not None
            continue
        if not exact and not stripped.rstrip(_BLANKS).endswith(escape):
            # No continuation: the instruction is this line, its characters consecutive. The
            # common line: nothing more done for an instruction the scanner does not read.
            raw = stripped.split(" ", 1)[0].split("\t", 1)[0]
            keyword = raw.upper()
            # Of COPY, ADD and RUN only the flags are read: without any, nothing is.
            if keyword in _READ_INSTRUCTIONS and (
                keyword not in _FLAGS_ONLY or _flagged(stripped[len(raw) :])
            ):
                base = starts[index - 1] + (first if index == 1 else 0)
                at = range(base + len(content) - len(stripped), base + len(content))
                words = _words(stripped, at, flags_only=keyword in _FLAGS_ONLY)
                yield _new(_Instruction, (keyword, words, index, ignore_next))
            ignore_next = False
            if "<<" in stripped:  # a heredoc marker is a shell word with "<<" in it
                index = _skip_heredocs(contents, index, _heredocs(stripped, escape))
            continue
        start_line = index
        # Each line's part of the instruction, and the offset where it starts.
        bodies: list[str] = []
        body_starts: list[int] = []
        lead = len(content) - len(stripped)
        part, part_base = stripped, starts[index - 1] + (first if index == 1 else 0) + lead
        while True:
            cut = _continues(part, escape)
            body = part if cut is None else part[:cut]
            bodies.append(body)
            body_starts.append(part_base)
            if cut is None or index >= total:
                break
            # Continuation: skip comment and empty lines, keep leading blanks.
            while index < total and (
                not contents[index].lstrip(_GO_SPACE) or _is_comment(contents[index])
            ):
                index += 1
            if index >= total:
                break
            part, part_base = contents[index], starts[index]
            index += 1
        logical = "".join(bodies)
        if exact:
            words = _split_words(logical, _joined(bodies, body_starts))
            if not words:
                continue
            yield _Instruction(words[0].text.upper(), words[1:], start_line, ignore_next)
            ignore_next = False
            index = _skip_heredocs(contents, index, _heredocs(logical, escape))
            continue
        raw = logical.lstrip(_BLANKS).split(" ", 1)[0].split("\t", 1)[0]
        keyword = raw.upper()
        if not keyword:
            continue  # only escapes and blanks: no instruction, as no words in the exact path
        if keyword in _READ_INSTRUCTIONS and (
            keyword not in _FLAGS_ONLY or _flagged(logical.lstrip(_BLANKS)[len(raw) :])
        ):
            # The offset of each character, only for an instruction whose words are read.
            continued = tuple(_joined(bodies, body_starts))
            words = _words(logical, continued, flags_only=keyword in _FLAGS_ONLY)
            yield _new(_Instruction, (keyword, words, start_line, ignore_next))
        ignore_next = False
        if "<<" in logical:  # a heredoc marker is a shell word with "<<" in it
            index = _skip_heredocs(contents, index, _heredocs(logical, escape))


def _flagged(arguments: str) -> bool:
    """Whether the words after an instruction's keyword start with a ``--`` flag."""
    return arguments.lstrip(_BLANKS).startswith("--")


def _joined(bodies: list[str], starts: list[int]) -> list[int]:
    """The offset of each character of ``"".join(bodies)``, body *i* starting at *starts[i]*."""
    offsets: list[int] = []
    for body, start in zip(bodies, starts, strict=True):
        offsets.extend(range(start, start + len(body)))
    return offsets


def _skip_heredocs(contents: list[str], index: int, heredocs: list[tuple[str, bool]]) -> int:
    """The index of the line after the bodies of *heredocs*, which start at line *index*."""
    for name, chomp in heredocs:
        while index < len(contents):
            body_line = contents[index]
            index += 1
            if (body_line.lstrip("\t") if chomp else body_line) == name:
                break
    return index


def _flags(words: list[_Word]) -> tuple[list[_Word], list[_Word]]:
    """Split leading ``--flag[=value]`` words from the rest, as BuildKit's flag parser does."""
    flags: list[_Word] = []
    for i, word in enumerate(words):
        if word.text == "--":
            return flags, words[i + 1 :]
        if not word.text.startswith("--"):
            return flags, words[i:]
        flags.append(word)
    return flags, []


def _flag_value(flag: _Word, name: str) -> _Word | None:
    prefix = f"--{name}="
    if flag.text.lower().startswith(prefix):
        return _Word(flag.text[len(prefix) :], flag.offsets[len(prefix) :])
    return None


def _mount_from(value: _Word) -> _Word | None:
    """The ``from=`` field of a ``--mount`` value (comma-separated key=value pairs)."""
    pos = 0
    for field_text in value.text.split(","):
        key, eq, val = field_text.partition("=")
        if eq and key.strip().lower() == "from":
            start = pos + len(key) + 1
            return _Word(val, value.offsets[start : start + len(val)])
        pos += len(field_text) + 1
    return None


def _parse_arg(instruction: _Instruction) -> list[_Arg]:
    args: list[_Arg] = []
    for word in instruction.words:
        name, eq, value = word.text.partition("=")
        if not _ARG_NAME_RE.fullmatch(name):
            continue
        if not eq:
            args.append(_Arg(name, None, True, instruction.line))
            continue
        offsets = word.offsets[len(name) + 1 :]
        simple = True
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value, offsets = value[1:-1], offsets[1:-1]
        if any(c in value for c in "'\"\\`"):
            simple = False
        args.append(_Arg(name, _Word(value, offsets), simple, instruction.line))
    return args


class _Scanner:
    def __init__(self, text: str, *, exact: bool) -> None:
        self.lines = _Lines(text)
        self.text = text
        self.exact = exact
        self.global_args: dict[str, _Arg] = {}
        self.stages: set[str] = set()
        self.stage_count = 0
        self.all_stages: set[str] = set()
        self.found: list[Found] = []
        self.skipped: list[Skipped] = []
        self._seen_arg_spans: set[int] = set()
        self._ignored = False

    def run(self) -> Scan:
        escape: str | None = "\\"
        problem = None
        if self.text.startswith("#") or self.text[:1] in _GO_SPACE:
            # Only a file that opens with a comment (or blanks) can hold a directive.
            escape, problem = _directives(self.lines.contents)
        elif self.text.startswith("\ufeff"):
            escape = None  # the directives are read after the BOM
        instructions = list(_instructions(self.text, self.lines, exact=self.exact, escape=escape))
        if problem is not None:
            number, reason = problem
            text = self.lines.contents[number].strip(_GO_SPACE)
            self.skipped.append(Skipped(text, number + 1, "directive", reason, malformed=True))
        if self.text.startswith(("#", "\ufeff#")):
            self._syntax()
        # COPY --from and RUN --mount from= may name any stage of the file, even a later one
        # (BuildKit resolves them once all stages are known); FROM only an earlier one.
        for instruction in instructions:
            if instruction.keyword == "FROM":
                _, rest = _flags(instruction.words)
                if len(rest) == 3 and rest[1].text.lower() == "as":
                    self.all_stages.add(rest[2].text.lower())
        handlers, other = _HANDLERS, _Scanner._on_other
        for instruction in instructions:
            self._ignored = instruction.ignored
            handlers.get(instruction.keyword, other)(self, instruction)
        return Scan(tuple(self.found), tuple(self.skipped))

    def _syntax(self) -> None:
        """The frontend image a ``# syntax=`` directive names: BuildKit pulls it to parse the
        file, so it is pinned like any image.

        BuildKit reads it with ``DetectSyntax`` (directives.go), on the raw file, not as the
        parser reads ``# escape=``: a BOM and a ``#!`` first line are skipped, then each line
        must start with ``#`` in its first column (no blanks before it), and the first line
        that is not a directive of a known name ends the search; the image is the value up to
        its first space (``# syntax = docker/dockerfile:1 // opts``). Its ``//`` and JSON
        forms belong to other frontends' files, not to Dockerfiles, and are not read.
        """
        contents, starts = self.lines.contents, self.lines.starts
        skip = 1 if contents[0].lstrip("\ufeff").startswith("#!") else 0
        seen: set[str] = set()
        for number in range(skip, len(contents)):
            content = contents[number]
            bom = 1 if number == 0 and content.startswith("\ufeff") else 0
            if not content.startswith("#", bom):
                return
            after = content[bom + 1 :]
            body = after.lstrip(_GO_SPACE)
            match = _DIRECTIVE_RE.fullmatch(body)
            if match is None or match.group(1).lower() not in _DIRECTIVES:
                return
            name = match.group(1).lower()
            if name in seen:
                return  # BuildKit's ParseAll stops at a repeated directive
            seen.add(name)
            if name != "syntax":
                continue
            value = match.group(2)
            image = value.split(" ", 1)[0]
            first = starts[number] + bom + 1 + (len(after) - len(body)) + match.start(2)
            self._add(_Word(image, range(first, first + len(image))), "# syntax", number + 1)
            return

    def _line(self, word: _Word, fallback: int) -> int:
        return self.lines.line_of(word.offsets[0]) if word.offsets else fallback

    def _add(self, word: _Word, where: str, line: int, *, ignored: bool = False) -> None:
        if self._ignored or ignored:
            reason = "left alone by a `# pin: ignore` comment"
            self.skipped.append(Skipped(word.text, line, where, reason))
            return
        try:
            reference = parse_reference(word.text)
        except ReferenceError_ as e:
            # Quotes are removed by BuildKit's shell lexer before it parses the name, so a
            # quoted word may be valid there; it is left alone rather than called malformed.
            quoted = any(c in word.text for c in "'\"\\`")
            reason = f"not an image reference ({e})"
            if not quoted:
                reason += f"{_REFUSED}: fix the reference"
            self.skipped.append(Skipped(word.text, line, where, reason, malformed=not quoted))
            return
        self.found.append(Found(word.text, reference, line, where, tuple(word.offsets)))

    def _is_stage(self, name: str, *, anywhere: bool = False, index: bool = False) -> bool:
        # BuildKit (dockerfile2llb convert.go) keeps stage names lower-cased. --from= and
        # from= look one up lower-casing the name (findStateByName); FROM does not (addState
        # looks up the name as written), so `FROM Base` is the image Base, which the build
        # refuses. Only COPY --from (*index*) tries a number as a stage index first, and past
        # the last stage it fails the build. FROM 0 and RUN --mount=from=0 name the image 0.
        if index and _INDEX_RE.fullmatch(name) is not None:
            return True
        if anywhere:
            return name.lower() in self.all_stages
        return name in self.stages

    def _image(
        self, word: _Word, where: str, line: int, *, in_from: bool = False, index: bool = False
    ) -> None:
        """Record *word* as an image unless it is a stage, scratch or made of variables.

        Only FROM (*in_from*) takes a whole image from a global ARG; elsewhere a variable
        means the reference is skipped.
        """
        # FROM sees only earlier stages; --from and from= see every stage of the file.
        stage = self._is_stage(word.text, anywhere=not in_from, index=index)
        if stage or word.text.lower() == "scratch":
            return
        if "$" not in word.text:
            self._add(word, where, line)
            return
        whole = _VARIABLE_RE.fullmatch(word.text)
        if not in_from or whole is None:
            reason = (
                "built from build arguments; pin it by hand or take the whole image from one ARG"
            )
            self.skipped.append(Skipped(word.text, line, where, reason))
            return
        name = whole.group(1) or whole.group(2)
        arg = self.global_args.get(name)
        if arg is None or arg.value is None:
            reason = f"the build argument {name} has no default value before the first FROM"
            self.skipped.append(Skipped(word.text, line, where, reason))
            return
        arg_where = f"ARG {name}"
        if not arg.simple or "$" in arg.value.text or not arg.value.offsets:
            reason = f"the default of ARG {name} is not a plain image reference"
            self.skipped.append(Skipped(arg.value.text, arg.line, arg_where, reason))
            return
        if arg.value.offsets[0] in self._seen_arg_spans:
            return
        self._seen_arg_spans.add(arg.value.offsets[0])
        if self._is_stage(arg.value.text) or arg.value.text.lower() == "scratch":
            return
        line = self._line(arg.value, arg.line)
        self._add(arg.value, arg_where, line, ignored=arg.ignored)

    def _on_arg(self, instruction: _Instruction) -> None:
        if self.stage_count == 0:
            for arg in _parse_arg(instruction):
                arg.ignored = instruction.ignored
                self.global_args[arg.name] = arg

    def _on_from(self, instruction: _Instruction) -> None:
        _, rest = _flags(instruction.words)
        named = len(rest) == 3 and rest[1].text.lower() == "as"
        self.stage_count += 1
        if len(rest) != 1 and not named:
            # BuildKit parseBuildStageName: "FROM requires either one or three arguments",
            # so `FROM as x` (or a name without AS) fails the build rather than naming an image.
            text = " ".join(word.text for word in rest)
            reason = f"FROM {text} is not `FROM IMAGE` nor `FROM IMAGE AS NAME`{_REFUSED}"
            self.skipped.append(Skipped(text, instruction.line, "FROM", reason, malformed=True))
            return
        image = rest[0]
        self._image(image, "FROM", self._line(image, instruction.line), in_from=True)
        if named:
            name = rest[2]
            if _STAGE_NAME_RE.fullmatch(name.text.lower()) is None:
                reason = (
                    f"the stage name {name.text!r} must start with a letter and hold only"
                    f" letters, digits, '-', '_' and '.'{_REFUSED}"
                )
                line = self._line(name, instruction.line)
                self.skipped.append(Skipped(name.text, line, "FROM", reason, malformed=True))
            self.stages.add(name.text.lower())

    def _on_copy(self, instruction: _Instruction) -> None:
        flags, _ = _flags(instruction.words)
        for flag in flags:
            value = _flag_value(flag, "from")
            if value is not None and value.text:
                line = self._line(value, instruction.line)
                self._image(value, f"{instruction.keyword} --from", line, index=True)

    def _on_add(self, instruction: _Instruction) -> None:
        flags, _ = _flags(instruction.words)
        for flag in flags:
            if _flag_value(flag, "from") is not None or flag.text.lower() == "--from":
                # BuildKit's ADD has no --from ("unknown flag: from"): the build fails.
                line = self._line(flag, instruction.line)
                reason = f"ADD has no --from flag{_REFUSED}: use COPY --from"
                self.skipped.append(Skipped(flag.text, line, "ADD", reason, malformed=True))

    def _on_other(self, instruction: _Instruction) -> None:
        pass  # ENV, WORKDIR...: the exact path yields every instruction, and none names an image

    def _on_run(self, instruction: _Instruction) -> None:
        flags, _ = _flags(instruction.words)
        for flag in flags:
            mount = _flag_value(flag, "mount")
            source = _mount_from(mount) if mount is not None else None
            if source is not None and source.text:
                self._image(source, "RUN --mount", self._line(source, instruction.line))


# What reads each instruction that can name an image: one dict for every file, not bound
# methods made for each.
_HANDLERS: dict[str, Callable[[_Scanner, _Instruction], None]] = {
    "FROM": _Scanner._on_from,
    "ARG": _Scanner._on_arg,
    "COPY": _Scanner._on_copy,
    "ADD": _Scanner._on_add,
    "RUN": _Scanner._on_run,
}


def scan(text: str) -> Scan:
    """Every image reference in the Dockerfile *text*, and what was skipped and why."""
    return _Scanner(text, exact=False).run()


def scan_exact(text: str) -> Scan:
    """What :func:`scan` returns, found by reading every line character by character.

    The reference that the fast path of :func:`scan` is tested against; pin itself never
    calls it.
    """
    return _Scanner(text, exact=True).run()
