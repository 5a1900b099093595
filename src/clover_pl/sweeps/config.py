"""The sweep YAML: what to evaluate (checkpoints or training runs) on which benchmarks under which settings.

A sweep file is plain YAML read with omegaconf, so ``${oc.env:NAME,default}`` interpolations resolve from the
environment. Paths (configs, checkpoints, ``output_dir``) are relative to the working directory, as ``clover-pl
--config`` paths are. Top-level keys (see ``docs/sweeps.md`` for a worked example):

- ``name``: the sweep's name (default: the file's stem);
- ``output_dir``: the sweep directory: results store, cell folders, report (default ``outputs/sweeps/<name>``);
- ``checkpoints``: a list of ``.ckpt`` files or run directories (every ``*.ckpt`` inside, sorted by step);
- ``training``: runs to train first, each then evaluated like a checkpoint (ablations); see :class:`Training`;
- ``benchmarks``: name -> :class:`Benchmark`; at least one;
- ``settings``: name -> :class:`Setting` (default: one ``zero_shot`` setting);
- ``seeds``: seeds of every cell that trains (training runs, fine-tuning settings); default ``[0]``;
- ``seed_keys``: the config keys each seed is written to (default ``[seed_everything]``);
- ``config`` / ``overrides``: configs stacked last and overrides given last in every cell (e.g. a trainer overlay
  with the cluster's GPU settings);
- ``env``: environment variables of every cell (e.g. ``CLOVER_DATA``);
- ``cell_timeout_s``: a cell running longer is stopped and recorded as failed (default: no limit).

Every error found is reported at once, naming the key, the bad value and the valid choices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

MODES = ("zero_shot", "fine_tune")
STAGES = ("test", "validate")
SELECTIONS = ("best", "last")
TOP_KEYS = (
    "name",
    "output_dir",
    "checkpoints",
    "training",
    "benchmarks",
    "settings",
    "seeds",
    "seed_keys",
    "config",
    "overrides",
    "env",
    "cell_timeout_s",
)
BENCHMARK_KEYS = ("config", "overrides", "stage", "metrics", "settings", "init_from_key", "paper")
SETTING_KEYS = ("mode", "config", "overrides", "select")
TRAINING_KEYS = ("config", "overrides", "variants", "evaluate")
VARIANT_KEYS = ("config", "overrides")


class SweepConfigError(ValueError):
    """A sweep file that cannot be used; the message lists every problem found, one per line."""


@dataclass(frozen=True)
class Benchmark:
    """One evaluation: a Lightning config (plus overlays and overrides) and the stage whose metrics are read.

    Args:
        name: the benchmark's name in the report.
        config: config files stacked in order (``--config`` each).
        overrides: ``--key=value`` arguments given after the configs.
        stage: ``test`` (``clover-pl test``, metrics ``results["test"]``) or ``validate`` (``val``).
        metrics: the metrics shown in the report, in order; None shows every scalar the run reported.
        settings: the settings this benchmark runs under; None for all of the sweep's settings.
        init_from_key: the config key through which a fine-tuning run receives the checkpoint; set to null in
            zero-shot runs, whose weights come from ``--ckpt_path``. None when the config has no such key.
        paper: key of the paper's figures for this benchmark (:data:`clover_pl.sweeps.paper.PAPER`), or None.
    """

    name: str
    config: tuple[str, ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    stage: str = "test"
    metrics: tuple[str, ...] | None = None
    settings: tuple[str, ...] | None = None
    init_from_key: str | None = "model.init_args.init_from"
    paper: str | None = None


@dataclass(frozen=True)
class Setting:
    """How a checkpoint meets a benchmark.

    Args:
        name: the setting's name in the report.
        mode: ``zero_shot`` (evaluate the checkpoint as it is) or ``fine_tune`` (``fit`` from it, then evaluate the
            fit's ``select`` checkpoint).
        config: overlays stacked after the benchmark's configs (e.g. fewer test frames, a trainer overlay).
        overrides: ``--key=value`` arguments after the benchmark's.
        select: fine-tuning: which checkpoint of the fit is evaluated, ``best`` (falls back to ``last`` when the
            fit monitors nothing) or ``last``.
    """

    name: str
    mode: str = "zero_shot"
    config: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    select: str = "best"


@dataclass(frozen=True)
class Variant:
    """One training run of a :class:`Training` block: overlays and overrides on top of its base config."""

    name: str
    config: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Training:
    """Runs to train (``clover-pl fit``), one per variant and seed, each evaluated on the benchmarks afterwards.

    Args:
        config: the base run config (e.g. ``conf/quickstart.yaml``).
        overrides: arguments given to every run.
        variants: name -> overlays (a list of config files) or ``{config, overrides}``; default one run, ``base``.
        evaluate: which checkpoints of each run are evaluated: ``best`` and/or ``last``.
    """

    config: tuple[str, ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    variants: tuple[Variant, ...] = (Variant("base"),)
    evaluate: tuple[str, ...] = ("last",)


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep file (see the module docstring for the meaning of each field)."""

    name: str
    output_dir: str
    benchmarks: tuple[Benchmark, ...]
    settings: tuple[Setting, ...] = (Setting("zero_shot"),)
    checkpoints: tuple[str, ...] = ()
    training: Training | None = None
    seeds: tuple[int, ...] = (0,)
    seed_keys: tuple[str, ...] = ("seed_everything",)
    config: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cell_timeout_s: float | None = None
    source: str = ""

    def benchmark_settings(self, benchmark: Benchmark) -> tuple[Setting, ...]:
        """The settings ``benchmark`` runs under, in the sweep's order."""
        if benchmark.settings is None:
            return self.settings
        return tuple(setting for setting in self.settings if setting.name in benchmark.settings)


def load_sweep(path: str) -> SweepConfig:
    """Read and validate a sweep file.

    Args:
        path: the YAML file.

    Returns:
        The sweep.

    Raises:
        SweepConfigError: the file is missing, does not resolve, or has bad keys or values (all listed).
    """
    from omegaconf import OmegaConf

    if not os.path.isfile(path):
        raise SweepConfigError(f"sweep file not found: {path}")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as error:  # noqa: BLE001 - YAML and interpolation errors alike are the user's to fix
        raise SweepConfigError(f"{path}: {type(error).__name__}: {error}") from error
    return parse_sweep(raw, source=path)


def parse_sweep(raw: Any, source: str = "<sweep>") -> SweepConfig:
    """Validate an already-loaded sweep mapping (see :func:`load_sweep`)."""
    errors: list[str] = []
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{source}: a sweep file is a mapping of {', '.join(TOP_KEYS)}")
    _unknown(raw, TOP_KEYS, "top level", errors)
    name = _string(raw, "name", "top level", errors) or os.path.splitext(os.path.basename(source))[0]
    settings = _settings(raw.get("settings"), errors)
    benchmarks = _benchmarks(raw.get("benchmarks"), {setting.name for setting in settings}, errors)
    training = _training(raw.get("training"), errors) if raw.get("training") is not None else None
    checkpoints = _strings(raw.get("checkpoints", []), "checkpoints", errors)
    if not checkpoints and training is None:
        errors.append("checkpoints / training: give at least one checkpoint (or run directory) or a training block")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(type(seed) is int for seed in seeds):
        errors.append(f"seeds: expected a non-empty list of integers, got {seeds!r}")
        seeds = [0]
    env = raw.get("env", {}) or {}
    if not isinstance(env, dict):
        errors.append(f"env: expected a mapping of variable names to values, got {env!r}")
        env = {}
    timeout = raw.get("cell_timeout_s")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        errors.append(f"cell_timeout_s: expected a positive number of seconds or null, got {timeout!r}")
    sweep = SweepConfig(
        name=name,
        output_dir=_string(raw, "output_dir", "top level", errors) or os.path.join("outputs", "sweeps", name),
        benchmarks=benchmarks,
        settings=settings,
        checkpoints=checkpoints,
        training=training,
        seeds=tuple(seeds),
        seed_keys=_strings(raw.get("seed_keys", ["seed_everything"]), "seed_keys", errors),
        config=_strings(raw.get("config", []), "config", errors),
        overrides=_overrides(raw.get("overrides"), "overrides", errors),
        env={str(key): "" if value is None else str(value) for key, value in env.items()},
        cell_timeout_s=None if timeout is None else float(timeout),
        source=source,
    )
    for benchmark in benchmarks:
        for setting in sweep.benchmark_settings(benchmark):
            if setting.mode == "fine_tune" and benchmark.init_from_key is None:
                errors.append(
                    f"benchmarks.{benchmark.name}: setting {setting.name!r} fine-tunes, which needs init_from_key "
                    "(the config key that receives the checkpoint)"
                )
    if errors:
        raise SweepConfigError(f"{source}: {len(errors)} problem(s):\n" + "\n".join(f"  - {e}" for e in errors))
    return sweep


def _settings(raw: Any, errors: list[str]) -> tuple[Setting, ...]:
    if raw is None:
        return (Setting("zero_shot"),)
    if not isinstance(raw, dict) or not raw:
        errors.append(f"settings: expected a non-empty mapping of setting names to settings, got {raw!r}")
        return (Setting("zero_shot"),)
    settings = []
    for name, body in raw.items():
        where = f"settings.{name}"
        body = {} if body is None else body
        if not isinstance(body, dict):
            errors.append(f"{where}: expected a mapping with keys {', '.join(SETTING_KEYS)}, got {body!r}")
            continue
        _unknown(body, SETTING_KEYS, where, errors)
        mode = _choice(body, "mode", MODES, "zero_shot", where, errors)
        select = _choice(body, "select", SELECTIONS, "best", where, errors)
        config = _strings(body.get("config", []), f"{where}.config", errors)
        overrides = _overrides(body.get("overrides"), f"{where}.overrides", errors)
        settings.append(Setting(str(name), mode, config, overrides, select))
    return tuple(settings)


def _benchmarks(raw: Any, setting_names: set[str], errors: list[str]) -> tuple[Benchmark, ...]:
    if not isinstance(raw, dict) or not raw:
        errors.append(f"benchmarks: expected a non-empty mapping of benchmark names to benchmarks, got {raw!r}")
        return ()
    benchmarks = []
    for name, body in raw.items():
        where = f"benchmarks.{name}"
        if isinstance(body, (str, list)):
            body = {"config": body}
        if not isinstance(body, dict):
            errors.append(
                f"{where}: expected a config path, a list of them, or a mapping with keys {', '.join(BENCHMARK_KEYS)}"
            )
            continue
        _unknown(body, BENCHMARK_KEYS, where, errors)
        config = _strings(body.get("config"), f"{where}.config", errors)
        if not config:
            errors.append(f"{where}.config: a benchmark needs at least one config file")
        metrics = body.get("metrics")
        settings = body.get("settings")
        if settings is not None:
            settings = _strings(settings, f"{where}.settings", errors)
            valid = ", ".join(sorted(setting_names))
            for setting in settings:
                if setting not in setting_names:
                    errors.append(f"{where}.settings: unknown setting {setting!r}; valid settings: {valid}")
        paper = body.get("paper")
        if paper is not None:
            from clover_pl.sweeps.paper import PAPER

            if paper not in PAPER:
                errors.append(f"{where}.paper: unknown paper entry {paper!r}; valid entries: {', '.join(PAPER)}")
        init_from_key = body.get("init_from_key", "model.init_args.init_from")
        if init_from_key is not None and not isinstance(init_from_key, str):
            errors.append(f"{where}.init_from_key: expected a config key or null, got {init_from_key!r}")
        benchmarks.append(
            Benchmark(
                name=str(name),
                config=config,
                overrides=_overrides(body.get("overrides"), f"{where}.overrides", errors),
                stage=_choice(body, "stage", STAGES, "test", where, errors),
                metrics=None if metrics is None else _strings(metrics, f"{where}.metrics", errors),
                settings=settings,
                init_from_key=init_from_key,
                paper=paper,
            )
        )
    return tuple(benchmarks)


def _training(raw: Any, errors: list[str]) -> Training | None:
    if not isinstance(raw, dict):
        errors.append(f"training: expected a mapping with keys {', '.join(TRAINING_KEYS)}, got {raw!r}")
        return None
    _unknown(raw, TRAINING_KEYS, "training", errors)
    config = _strings(raw.get("config"), "training.config", errors)
    if not config:
        errors.append("training.config: a training block needs at least one config file")
    variants = []
    raw_variants = raw.get("variants") or {"base": []}
    if not isinstance(raw_variants, dict):
        errors.append(f"training.variants: expected a mapping of run names to overlays, got {raw_variants!r}")
        raw_variants = {}
    for name, body in raw_variants.items():
        where = f"training.variants.{name}"
        if body is None or isinstance(body, (list, str)):
            body = {"config": body or []}
        if not isinstance(body, dict):
            errors.append(f"{where}: expected a list of overlay configs or a mapping with keys config, overrides")
            continue
        _unknown(body, VARIANT_KEYS, where, errors)
        variants.append(
            Variant(
                str(name),
                _strings(body.get("config", []), f"{where}.config", errors),
                _overrides(body.get("overrides"), f"{where}.overrides", errors),
            )
        )
    evaluate = _strings(raw.get("evaluate", ["last"]), "training.evaluate", errors)
    for selection in evaluate:
        if selection not in SELECTIONS:
            errors.append(f"training.evaluate: {selection!r} is not one of {', '.join(SELECTIONS)}")
    return Training(config, _overrides(raw.get("overrides"), "training.overrides", errors), tuple(variants), evaluate)


def _unknown(body: dict[str, Any], valid: tuple[str, ...], where: str, errors: list[str]) -> None:
    for key in body:
        if key not in valid:
            errors.append(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")


def _choice(body: dict[str, Any], key: str, valid: tuple[str, ...], default: str, where: str, errors: list[str]) -> str:
    value = body.get(key, default)
    if value not in valid:
        errors.append(f"{where}.{key}: {value!r} is not one of {', '.join(valid)}")
        return default
    return str(value)


def _string(body: dict[str, Any], key: str, where: str, errors: list[str]) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        errors.append(f"{where}: {key} must be a string, got {value!r}")
        return None
    return value


def _strings(raw: Any, where: str, errors: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        errors.append(f"{where}: expected a string or a list of strings, got {raw!r}")
        return ()
    return tuple(raw)


def _overrides(raw: Any, where: str, errors: list[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(key, str) for key in raw):
        errors.append(f"{where}: expected a mapping of config keys (e.g. trainer.max_steps) to values, got {raw!r}")
        return {}
    return dict(raw)
