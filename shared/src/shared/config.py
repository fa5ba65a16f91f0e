"""Typed configs from the command line: `--key=value` overrides, `--config file.toml`, `--help`.

A config is a plain dataclass whose fields carry a default, a one-line help text and, for a
number, the range it may take:

    @dataclass
    class TrainConfig:
        lr: float = option(3e-4, "peak learning rate", gt=0)
        top_p: float = option(0.9, "nucleus sampling mass", gt=0, le=1)       # (0, 1]
        device: Literal["auto", "cpu", "cuda"] = option("auto", "where to train")   # choices
        model: ModelConfig = option(ModelConfig, "the network")   # nested: --model.n_layer=4

    cfg = parse_config(TrainConfig, sys.argv[1:], prog="gpt train")

Values come in four layers, each overriding the one below:

    defaults  <  a saved run's config (`saved=`)  <  `--config FILE.toml`  <  `--key=value`

Keys may be written with dashes or underscores, and a nested key by its last part alone when
only one field has that name (`--n_layer` for `--model.n_layer`). Every mistake raises
`ConfigError` with one line naming the field, the value and what it expects; the command
dispatcher turns that into exit code 2. Checks that involve two fields ("set --time-limit or
--max-steps") stay in the config's `__post_init__`. What this leaves out: lists of nested
configs and dict-valued fields, which no stage needs.
"""

import dataclasses
import difflib
import operator
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from shared.errors import ConfigError

C = TypeVar("C")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def option(
    default: Any,
    help: str,
    *,
    positional: bool = False,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> Any:
    """A dataclass field with a default, a help line and, for a number, its allowed range.

    `default` may be a value or, for a nested config or a list, a class or zero-argument factory.
    `positional=True` lets the command take this field as a bare argument (`encode "some text"`).
    `gt`, `ge`, `lt`, `le` bound the value (each item of a list) from below and above: greater
    than, greater or equal, less than, less or equal. `parse_config` refuses a value outside and
    `--help` shows the range. Choices need no keyword: a `Literal[...]` type lists them.
    """
    if gt is not None and ge is not None or lt is not None and le is not None:
        raise TypeError("give at most one lower bound (gt or ge) and one upper (lt or le)")
    bounds = {k: v for k, v in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)) if v is not None}
    metadata = {"help": help, "positional": positional, "bounds": bounds}
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=default, metadata=metadata)
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ----------------------------------------------------------------------------------------------
# Describing fields


@dataclasses.dataclass
class _Field:
    """One settable leaf of a (possibly nested) config: `model.n_layer`."""

    key: str  # dotted path, underscores
    type: Any  # the resolved annotation
    default: Any
    help: str
    positional: bool
    bounds: dict[str, float]  # {"gt": 0, "le": 1}: see option()


def _fields(cls: type, prefix: str = "") -> list[_Field]:
    hints = typing.get_type_hints(cls)
    out: list[_Field] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        key = prefix + f.name
        if dataclasses.is_dataclass(hint):
            out.extend(_fields(hint, key + "."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        meta = f.metadata
        out.append(
            _Field(
                key,
                hint,
                default,
                meta.get("help", ""),
                meta.get("positional", False),
                meta.get("bounds", {}),
            )
        )
    return out


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "{" + ",".join(str(a) for a in typing.get_args(hint)) + "}"
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _type_name(args[0]) + "|none"
    if origin in (list, tuple):
        return _type_name(typing.get_args(hint)[0]) + ",..."
    return {bool: "BOOL", int: "INT", float: "FLOAT", str: "STR", Path: "PATH"}.get(
        hint, getattr(hint, "__name__", str(hint)).upper()
    )


def _expects(hint: Any) -> str:
    """Words for an error message: what a field accepts."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _expects(args[0]) + " or 'none'"
    if origin in (list, tuple):
        return "a comma-separated list of " + _expects(typing.get_args(hint)[0]) + "s"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "text"}
    return names.get(hint, "a " + getattr(hint, "__name__", str(hint)))


_WORDS = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
_HOLDS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


def describe_bounds(bounds: dict[str, float]) -> str:
    """Words for a range: 'positive', 'at least 1', 'less than 1', 'in (0, 1]'."""
    if len(bounds) == 2:  # an interval: ( and ) leave the end out, [ and ] take it in
        left = f"({bounds['gt']}" if "gt" in bounds else f"[{bounds['ge']}"
        right = f"{bounds['lt']})" if "lt" in bounds else f"{bounds['le']}]"
        return f"in {left}, {right}"
    if bounds == {"gt": 0}:
        return "positive"
    ((kind, edge),) = bounds.items()
    return f"{_WORDS[kind]} {edge}"


def _within(x: float, bounds: dict[str, float]) -> bool:
    return all(_HOLDS[kind](x, edge) for kind, edge in bounds.items())


def _check_bounds(value: Any, field: _Field) -> Any:
    """`value` if it lies within the field's range (every item, for a list), else ConfigError."""
    if not field.bounds or value is None:
        return value
    words = describe_bounds(field.bounds)
    verb = "lie" if words.startswith("in ") else "be"
    if isinstance(value, list | tuple):
        bad = [x for x in value if not _within(x, field.bounds)]
        if bad:
            raise ConfigError(
                f"--{field.key}: each value must be {words}, got {bad[0]} in {_show(value)}"
            )
    elif not _within(value, field.bounds):
        raise ConfigError(f"--{field.key} must {verb} {words}, got {value}")
    return value


# ----------------------------------------------------------------------------------------------
# Converting values


def _convert(value: Any, hint: Any, key: str) -> Any:
    """Turn a string from the command line (or a TOML value) into `hint`, or raise ConfigError."""
    origin = typing.get_origin(hint)
    bad = ConfigError(f"--{key} expects {_expects(hint)}, got {value!r}")
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return _convert(value, args[0], key)
    if origin is Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if value == choice or (isinstance(value, str) and value == str(choice)):
                return choice
        raise bad
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1]
        if isinstance(value, str):  # "" is the empty list: --hidden= means no hidden layers
            items = value.split(",") if value.strip() else []
        else:
            items = list(value)
        converted = [_convert(v.strip() if isinstance(v, str) else v, item, key) for v in items]
        return origin(c for c in converted if c != "")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise bad
    if hint is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        try:
            return int(str(value).replace("_", ""))
        except ValueError:
            try:  # accept 1e5 for an integer when it is a whole number
                as_float = float(value)
            except ValueError:
                raise bad from None
            if as_float.is_integer():
                return int(as_float)
            raise bad from None
    if hint is float:
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    if hint is str:
        if not isinstance(value, str):
            raise bad
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise bad
        return Path(value)
    raise ConfigError(f"--{key} has a type the config parser does not know: {hint!r}")


def _value(raw: Any, field: _Field) -> Any:
    """A raw value (text from the command line, TOML, JSON) converted and checked for `field`."""
    return _check_bounds(_convert(raw, field.type, field.key), field)


def _closest(key: str, valid: list[str]) -> str:
    matches = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    if not matches:  # `n_layer` for `model.n_layer`: match on the last part too
        tails = {v.rsplit(".", 1)[-1]: v for v in valid}
        matches = [tails[m] for m in difflib.get_close_matches(key, list(tails), n=3, cutoff=0.6)]
    if not matches:
        return "see --help for the valid options"
    return "did you mean " + " or ".join(f"--{m}" for m in matches) + "?"


def _matching(key: str, fields: dict[str, _Field]) -> list[str]:
    """The fields `key` may name: itself, or else every nested field whose last part it is.

    `n_layer` names `model.n_layer` when no other field ends in `.n_layer`; an exact name wins,
    so a top-level `max_len` is never confused with `model.max_len`.
    """
    if key in fields:
        return [key]
    return [k for k in fields if k.endswith("." + key)]


def _resolve(name: str, fields: dict[str, _Field], prog: str) -> str:
    """The field an option names (`--n-layer` -> `model.n_layer`), or a ConfigError that helps."""
    key = name.replace("-", "_")
    found = _matching(key, fields)
    if len(found) > 1:
        raise ConfigError(f"--{name} is ambiguous: " + " or ".join(f"--{k}" for k in found))
    if not found:
        raise ConfigError(f"unknown option --{name} for {prog}; {_closest(key, list(fields))}")
    return found[0]


# ----------------------------------------------------------------------------------------------
# Building a config from values


def _set_path(values: dict[str, Any], key: str, value: Any) -> None:
    node = values
    *parents, leaf = key.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def _build(cls: type[C], values: dict[str, Any]) -> C:
    """Instantiate `cls`, recursing into nested configs; `__post_init__` may raise ConfigError."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        hint = hints[f.name]
        kwargs[f.name] = (
            _build(hint, values[f.name]) if dataclasses.is_dataclass(hint) else values[f.name]
        )
    try:
        return cls(**kwargs)
    except ValueError as error:  # a __post_init__ check written with a plain ValueError
        raise ConfigError(str(error)) from None


def _flatten_toml(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in table.items():
        key = prefix + k.replace("-", "_")
        if isinstance(v, dict):
            flat.update(_flatten_toml(v, key + "."))
        else:
            flat[key] = v
    return flat


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file into flat `{"model.n_layer": 4}` form, with clear errors."""
    try:
        with open(path, "rb") as fh:
            return _flatten_toml(tomllib.load(fh))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def config_from_dict(cls: type[C], flat_or_nested: dict[str, Any], source: str = "dict") -> C:
    """Rebuild a config from `config_to_dict` output (e.g. a run's config.json), checking keys."""
    fields = {f.key: f for f in _fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in _flatten_toml(flat_or_nested).items():
        if key not in fields:
            raise ConfigError(f"unknown key {key!r} in {source}; {_closest(key, list(fields))}")
        _set_path(values, key, _value(raw, fields[key]))
    return _build(cls, values)


def _read_argv(
    argv: list[str], fields: dict[str, _Field], prog: str
) -> tuple[list[tuple[str, Any]], Path | None]:
    """The command line as (field key, raw value) pairs in order, and the `--config` file if any."""
    overrides: list[tuple[str, Any]] = []
    bare: list[str] = []
    config_file: Path | None = None
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--") or token == "--":
            bare.append(token)
            continue
        name, has_value, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if key == "config":
            if not has_value:
                if i >= len(argv):
                    raise ConfigError("--config needs a file: --config path/to/file.toml")
                value, i = argv[i], i + 1
            config_file = Path(value)
            continue
        if not _matching(key, fields) and key.startswith("no_") and not has_value:
            negated = _matching(key[3:], fields)  # --no-compile sets compile to false
            if len(negated) == 1 and fields[negated[0]].type is bool:
                overrides.append((negated[0], False))
                continue
        key = _resolve(name, fields, prog)
        if not has_value:
            if fields[key].type is bool and (i >= len(argv) or argv[i].startswith("--")):
                value = "true"
            elif i < len(argv):
                value, i = argv[i], i + 1
            else:
                raise ConfigError(f"--{name} needs a value: --{name}=VALUE")
        overrides.append((key, value))

    if bare:
        positional = [f for f in fields.values() if f.positional]
        if not positional:
            raise ConfigError(f"{prog} takes no bare arguments, got {bare[0]!r}; use --key=value")
        overrides.append((positional[0].key, " ".join(bare)))
    return overrides, config_file


def parse_config(
    cls: type[C],
    argv: list[str],
    prog: str = "command",
    description: str = "",
    saved: dict[str, Any] | None = None,
) -> C:
    """Build `cls` from four layers, each overriding the one below it:

        1. the defaults declared with `option(...)`;
        2. `saved`, a run's own config (`config_to_dict` output, e.g. from its checkpoint), so
           that resuming a run keeps its settings; keys this version no longer has are skipped;
        3. the TOML file given by `--config FILE`, wherever it appears on the command line;
        4. the `--key=value` options.

    Every value is converted to its field's type and checked against its range as it is read.
    `--help` prints every field with its default, range and help line, then exits with status 0.
    """
    fields = {f.key: f for f in _fields(cls)}
    if "-h" in argv or "--help" in argv:
        print(format_help(cls, prog, description))
        raise SystemExit(0)
    overrides, config_file = _read_argv(argv, fields, prog)

    values: dict[str, Any] = {}
    for key, raw in _flatten_toml(saved or {}).items():
        if key in fields:
            _set_path(values, key, _value(raw, fields[key]))
    if config_file is not None:
        for key, raw in load_toml(config_file).items():
            if key not in fields:
                raise ConfigError(
                    f"unknown key {key!r} in {config_file}; {_closest(key, list(fields))}"
                )
            _set_path(values, key, _value(raw, fields[key]))
    for key, raw in overrides:
        _set_path(values, key, _value(raw, fields[key]))

    missing = [f.key for f in fields.values() if f.default is dataclasses.MISSING]
    missing = [k for k in missing if not _has_path(values, k)]
    if missing:
        raise ConfigError(f"{prog} needs --{missing[0]}=VALUE ({fields[missing[0]].help})")
    return _build(cls, values)


def _has_path(values: dict[str, Any], key: str) -> bool:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


# ----------------------------------------------------------------------------------------------
# Showing a config


def format_help(cls: type, prog: str, description: str = "") -> str:
    """Usage text: every field with its type, default and help line."""
    fields = _fields(cls)
    positional = [f for f in fields if f.positional]
    usage = f"usage: {prog} [--config FILE.toml] [--key=value ...]"
    if positional:
        usage += f" [{positional[0].key.upper()}]"
    lines = [usage, ""]
    if description:
        lines += [description.strip(), ""]
    lines.append("options (defaults in brackets; a TOML file from --config is applied first):")
    rows = []
    for f in fields:
        default = "required" if f.default is dataclasses.MISSING else _show(f.default)
        allowed = f"; {describe_bounds(f.bounds)}" if f.bounds else ""
        rows.append((f"--{f.key}={_type_name(f.type)}", f"{f.help}{allowed} [{default}]"))
    rows.append(("--config=FILE", "read options from a TOML file (tables for nested configs)"))
    rows.append(("-h, --help", "show this message and exit"))
    width = min(max(len(r[0]) for r in rows) + 2, 40)
    for left, right in rows:
        if len(left) + 2 > width:
            lines.append(f"  {left}")
            lines.append(" " * (width + 2) + right)
        else:
            lines.append(f"  {left.ljust(width)}{right}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of a config (paths become strings, tuples lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def format_config(cfg: Any) -> str:
    """One `key = value` line per leaf, for printing the resolved config at the start of a run."""
    flat = _flatten_toml(config_to_dict(cfg))
    width = max((len(k) for k in flat), default=0)
    return "\n".join(f"  {k.ljust(width)} = {_show(v)}" for k, v in flat.items())
