"""Run configs from option values: rule specs (``RULE[:KEY=VALUE...]``, e.g.
``general:strategy=s2``), rule options (``KEY=VALUE`` for the rules that have ``KEY``,
``RULE.KEY=VALUE`` for one), and the options :func:`~.config.run_options` declares."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .. import rules
from .config import LOSS_OF_TASK, RunConfig, entries, run_options


def key_value(pair: str, error: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as the key and the value: JSON where it parses (a number, true, null,
    {...}), else the text itself; without ``=``, a ``ValueError`` saying ``error``."""
    key, sep, text = pair.partition("=")
    if not sep:
        raise ValueError(error)
    try:
        return key, json.loads(text)
    except json.JSONDecodeError:
        return key, text


def parse_rule_spec(spec: str) -> tuple[str, dict]:
    """``RULE[:KEY=VALUE...]``: the rule's name and its options."""
    name, *pairs = spec.split(":")
    rules.get(name)
    return name, dict(key_value(pair, f"in {spec!r}: options are KEY=VALUE; got {pair!r}")
                      for pair in pairs)


def rule_specs(text: str) -> list[str]:
    """Comma-separated rule specs (``rules``), each once."""
    specs = [s.strip() for s in text.split(",") if s.strip()]
    if not specs:
        raise ValueError("`rules` needs at least one rule name")
    if len(set(specs)) != len(specs):
        raise ValueError("`rules` names a rule twice; give the copies different options")
    return specs


def check_rule_options(names: Sequence[str], pairs: Sequence[str]) -> None:
    """Every plain ``KEY=VALUE`` must belong to at least one of the rules, and every
    ``RULE.KEY=VALUE`` to a rule of the run that has ``KEY``."""
    for pair in pairs:
        where = f"`rule_option={pair}`"
        key, _ = key_value(pair, f"{where}: a rule option is KEY=VALUE or RULE.KEY=VALUE")
        target, dot, name = key.rpartition(".")
        if not dot and not any(key in rules.get(n).defaults for n in names):
            raise ValueError(f"no rule among {', '.join(names)} has the option {key!r}")
        if dot and target not in names:
            raise ValueError(f"{where}: {target!r} is not a rule of this run "
                             f"({', '.join(names)})")
        if dot and name not in rules.get(target).defaults:
            valid = ", ".join(sorted(rules.get(target).defaults)) or "none"
            raise ValueError(f"{where}: rule {target!r} has no option {name!r}; its "
                             f"options: {valid}")


def options_for(rule: str, pairs: Sequence[str]) -> dict:
    """The ``KEY=VALUE`` pairs that are ``rule``'s: its own ``RULE.KEY=VALUE`` and the plain
    ones it has (the others may be another rule's)."""
    options = {}
    accepted = rules.get(rule).defaults
    for pair in pairs:
        key, value = key_value(pair, f"a rule option is KEY=VALUE; got {pair!r}")
        target, dot, key = key.rpartition(".")
        if (dot and target == rule) or (not dot and key in accepted):
            options[key] = value
    return options


def entry_values(field: str, values: Mapping[str, Any]) -> dict:
    """The keys of the dict ``field`` its :class:`~.config.Entry` options set."""
    return {key: values[key] for key, e in entries(field).items()
            if e.always or values[key] != e.default}


def with_defaults(values: Mapping[str, Any]) -> dict:
    """``values`` and, for the options of :func:`~.config.run_options` not among them,
    the command line's defaults."""
    return {name: keywords.get("default") for name, keywords in run_options().items()} | \
        dict(values)


def flag_pairs(values: Mapping[str, Any]) -> list[str]:
    """The rule-option entries given (``strategy``, ...) as ``KEY=VALUE`` pairs."""
    return [f"{k}={json.dumps(v)}" for k, v in entry_values("rule_options", values).items()]


def config_from(spec: str, values: Mapping[str, Any], pairs: Sequence[str] = ()) -> RunConfig:
    """The config of one rule spec, from the values of :func:`~.config.run_options` (by
    name; the command line's defaults for those not given) and ``KEY=VALUE`` pairs; its
    rule options are the pairs', then the rule-option entries', then the spec's own."""
    values = with_defaults(values)
    rule, spec_options = parse_rule_spec(spec)
    named = options_for(rule, [p for p in pairs if p.partition("=")[0].startswith(rule + ".")])
    clash = sorted(k for k in named.keys() & spec_options.keys()
                   if named[k] != spec_options[k])
    if clash:
        raise ValueError(f"{spec} sets {', '.join(clash)} to another value than "
                         f"`rule_option={rule}.{clash[0]}`; set it in one place")
    fields = {f.name: values[f.name] for f in dataclasses.fields(RunConfig) if f.name in values}
    return RunConfig(**{
        **fields, "rule": rule, "label": spec,
        "rule_options": {**options_for(rule, [*pairs, *flag_pairs(values)]), **spec_options},
        "model_options": entry_values("model_options", values),
        "loss_options": entry_values("loss_options", values),
        "loss": values["loss"] or LOSS_OF_TASK.get(values["task"], "ce")})


def configs_from(specs: Sequence[str], values: Mapping[str, Any],
                 pairs: Sequence[str] = ()) -> dict[str, RunConfig]:
    """:func:`config_from` for every spec, checked (:meth:`RunConfig.validate`; an error
    names the spec when it has options) after the pairs are (:func:`check_rule_options`)."""
    check_rule_options([parse_rule_spec(s)[0] for s in specs],
                       [*pairs, *flag_pairs(with_defaults(values))])
    configs = {spec: config_from(spec, values, pairs) for spec in specs}
    for spec, config in configs.items():
        try:
            config.validate()
        except ValueError as err:
            raise (ValueError(f"{spec}: {err}") if spec != config.rule else err) from None
    return configs
