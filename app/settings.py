"""Every setting, size, count and time limit in one object, read from CNNVIZ_* variables."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CNNVIZ_", extra="ignore")

    # --- server -----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # warm the caches a first /features visit needs in a background thread at start-up
    warmup: bool = True
    data_dir: Path = ROOT / "var"
    # runs database: empty → SQLite file under data_dir; sqlite:///path; postgresql://… (a
    # server every worker shares: needed for `cnnviz serve --workers N`; README "Several workers")
    database_url: str = ""
    database_pool_size: int = Field(8, ge=1, le=100)  # Postgres connections per server process
    # torch intra-op threads of the server process (set once at start-up); 0: torch's default.
    # Requests already run side by side in the server's thread pool (docs/PERFORMANCE.md).
    torch_threads: int = Field(0, ge=0, le=256)
    # glibc malloc (app/memory.py): arenas of the `cnnviz serve` processes (0: glibc's default,
    # 8 per core); free heap goes back (malloc_trim) once heavy requests pause this long, and
    # while they go on at most this often (0: never)
    malloc_arena_max: int = Field(2, ge=0, le=1024)
    malloc_trim_seconds: float = Field(60.0, ge=0)
    # how long an idle OpenMP thread of a `cnnviz` process spins before it sleeps (GOMP_SPINCOUNT,
    # app/cli.py); 0: libgomp's default (300 000, or 1 000 once it runs more threads than cores)
    omp_spin_count: int = Field(1000, ge=0)

    # --- every request (app/limits.py) and cross-origin access -------------------------------
    max_body_bytes: int = 4_000_000  # a body of number grids (conv/pool traces): 413 above this
    # every other JSON body (app/json_guard.py), then its shape counted before parsing: nesting
    # depth (422), values (elements and members) and the longest string (413)
    max_json_body_bytes: int = Field(262_144, ge=1024)
    max_json_depth: int = Field(32, ge=2)
    max_json_values: int = Field(250_000, ge=1)
    max_json_string_bytes: int = Field(65_536, ge=64)
    max_multipart_bytes: int = 80_000_000  # a multipart upload whole; routes check their own too
    client_heavy_requests: int = 2  # feature/ERF/run requests one client address has in flight
    retry_after_seconds: int = 2  # the Retry-After of a 429 for heavy requests
    # per-client quotas over time (app/quotas.py): one address cannot fill a shared pool
    client_runs_per_hour: int = Field(30, ge=1)  # training runs started
    client_sessions_per_hour: int = Field(20, ge=1)  # class sessions opened
    client_follows_per_minute: int = Field(300, ge=1)  # follower stream connections
    client_follower_slots: int = Field(100, ge=1)  # follower streams open at once
    client_heavy_per_minute: int = Field(120, ge=1)  # feature / receptive-field requests
    client_live_requests: int = Field(2, ge=1)  # live predictions one client has in flight
    client_live_per_minute: int = Field(1800, ge=1)  # live predictions (30 a second)
    client_wrong_codes_per_minute: int = Field(30, ge=1)  # unknown session codes (guessing)
    quota_clients: int = Field(10_000, ge=1)  # client addresses remembered per quota
    cors_origins: list[str] = []  # other origins allowed to call the API; empty: same-origin only
    # HTTP (app/http_server.py, app/http_guards.py): deadlines for a request's head and body and
    # for a reader that stops reading (an SSE follower); open connections (kept below the
    # file-descriptor limit); host names besides IP literals, localhost and `host` ("*": any)
    http_header_timeout_seconds: float = Field(10.0, gt=0)
    http_body_timeout_seconds: float = Field(120.0, gt=0)
    http_write_timeout_seconds: float = Field(30.0, gt=0)
    max_connections: int = Field(1000, ge=1)
    allowed_hosts: list[str] = []
    # `cnnviz serve --workers N>1` on SQLite is refused unless this is set (Postgres: allowed);
    # classroom sessions, feature results and per-client limits stay per process (README)
    allow_several_workers: bool = False

    # --- conv / pool trace limits -----------------------------------------------------------
    max_trace_size: int = 64  # input height and width
    max_trace_kernel: int = 11
    max_trace_channels: int = 16
    max_trace_filters: int = 16
    max_trace_products: int = 400_000  # products (pool: window cells) in one trace response

    # --- activation, vanishing-gradient and loss explorers (/api/functions) -------------------
    max_activation_points: int = 2001  # samples of one curve
    max_activation_range: float = 100.0  # |start| and |stop| of a curve
    max_vanishing_depth: int = 50  # hidden layers of the vanishing-gradient stack
    max_vanishing_width: int = 128  # units per hidden layer
    max_loss_classes: int = 100  # logits or probabilities of one loss example

    # --- model zoo summaries (/api/models) ----------------------------------------------------
    max_model_channels: int = 4  # input channels of a summarised model
    max_model_size: int = 512  # input height and width
    max_model_classes: int = 1000

    # --- receptive fields (/api/models/{name}/receptive-field, /api/receptive-field) ----------
    max_erf_size: int = 256  # input height and width of an effective receptive field
    max_erf_samples: int = 64  # random inputs averaged in one batched backward pass
    max_erf_depth: int = 32  # layers of a conv stack (and of a depth sweep)
    max_erf_kernel: int = 11
    max_erf_dilation: int = 16  # first-layer dilation of a stack
    max_erf_macs: int = 40_000_000_000  # multiply-adds of one request (resnet18 at 224 × 16)
    # float values a conv stack's ERF or depth sweep keeps for its backward pass (256 MB; its
    # 1×1 layers do 4 multiply-adds per value kept: the line above does not bound memory)
    max_erf_values: int = Field(64_000_000, ge=1)

    # --- classroom follow mode and quiz (app/sessions.py: in memory on SQLite; shared by every
    # worker through the database on PostgreSQL, app/sessions_postgres.py) -------------------
    max_class_sessions: int = Field(200, ge=1)
    max_session_followers: int = Field(500, ge=1)
    max_session_state_bytes: int = Field(16_384, ge=256)  # JSON of one published page state
    session_idle_seconds: float = 3 * 3600  # a session with no teacher action this long ends
    session_replay_events: int = Field(256, ge=1)  # recent events kept for Last-Event-ID replay
    session_replay_bytes: int = Field(131_072, ge=1024)  # and their encoded bytes, per session
    session_ping_seconds: float = 15.0  # SSE keep-alive comment interval
    max_quiz_answers: int = Field(500, ge=1)  # answers to one quiz question (one per student)
    session_picture_bytes: int = Field(300_000, ge=1024)  # a teacher's picture (one per session)
    # memory every class session together may hold at the limits above (checked at start-up)
    class_memory_bytes: int = 150_000_000
    session_poll_seconds: float = Field(1.0, gt=0)  # Postgres: a look without notification

    # --- feature maps (/api/features) ---------------------------------------------------------
    max_upload_bytes: int = 20_000_000  # one uploaded picture
    max_image_pixels: int = 40_000_000  # width × height, read from the header before decoding
    # longer side ÷ shorter side (from the header), and a picture resized for a model before
    # its centre crop: a 1×6000 strip (86 bytes) would otherwise resize to 256×1,536,000
    max_image_aspect_ratio: float = Field(20.0, ge=1.0)
    max_resized_pixels: int = Field(4_000_000, ge=1)
    # a live prediction's picture (POST /api/predict): a small frame, sent many times a second
    live_max_picture_bytes: int = Field(1_000_000, ge=1)
    live_workers: int = Field(2, ge=1, le=64)  # live-prediction threads, one torch thread each
    feature_max_channels: int = 64  # maps drawn per layer (the first ones; the rest are counted)
    feature_store_bytes: int = 256_000_000  # results and their drawn PNGs, together (LRU)
    feature_store_entries: int = 64
    # float maps held between a POST's answer and their levels (all results together; made in
    # the background right after the answer, or on a first picture request; beyond: before)
    feature_deferred_bytes: int = Field(256_000_000, ge=0)
    feature_models_cached: int = 3  # built models kept in memory (vgg16 alone is ~530 MB)
    feature_concurrency: int = 2  # forward passes at once (each holds its activations)
    # POST /api/features/live (a drawing's maps while the pen is down): models whose input is at
    # most this many pixels (live quota), and the PNG bytes one answer carries inline at most
    feature_live_max_input_pixels: int = Field(4096, ge=1)
    feature_live_inline_bytes: int = Field(262_144, ge=0)

    # --- uploaded ONNX models (/api/uploaded-models; in data_dir/models; docs/ONNX.md) --------
    onnx_max_bytes: int = Field(75_000_000, ge=1)  # one .onnx file (resnet18: 47 MB)
    onnx_max_nodes: int = Field(5_000, ge=1)  # nodes of its graph, subgraphs included
    onnx_max_parameters: int = Field(30_000_000, ge=1)  # values of its weights and constants
    onnx_max_input_pixels: int = Field(1_048_576, ge=1)  # height × width of its input
    onnx_max_models: int = Field(50, ge=1)  # models stored at once
    onnx_models_cached: int = Field(3, ge=1)  # converted models kept in memory
    onnx_concurrency: int = Field(1, ge=1)  # uploads checked and converted at once (others wait)
    onnx_max_labels_bytes: int = Field(100_000, ge=1)  # the class names file

    # --- published ImageNet weights (`cnnviz weights`, /api/weights; in data_dir/weights) ------
    weights_download_timeout: float = Field(30.0, gt=0)  # seconds without data before giving up
    weights_max_download_bytes: int = Field(1_000_000_000, ge=1)  # one downloaded file
    # a mirror of download.pytorch.org/models/ serving the same file names ('' : the original)
    weights_mirror: str = ""

    # --- a unit's computation (/api/features/{id}/unit) ---------------------------------------
    unit_max_channels: int = 8  # input channels of a convolution written out (the rest summed)
    unit_max_terms: int = 16  # largest contributions of a linear layer written out (rest summed)
    unit_store_bytes: int = 200_000_000  # float activations kept for units, all results (LRU)
    unit_store_entries: int = 4  # results whose float activations are kept

    # --- why this prediction (/api/explanations) ----------------------------------------------
    explain_ig_steps: int = 32  # integrated gradients: points on the path from the baseline
    occlusion_max_windows: int = 4096  # patch positions of one occlusion
    occlusion_max_macs: int = 2_000_000_000_000  # windows × the model's multiply-adds
    occlusion_batch: int = 16  # occluded pictures per forward pass
    occlusion_jobs: int = 2  # occlusions running at once; more: 429
    occlusion_keep_seconds: float = 600.0  # a finished occlusion's answer is kept this long

    # --- training runs (app/runs: a worker process each, history in SQLite) -------------------
    max_concurrent_runs: int = 2  # worker processes training at once; later runs queue
    max_queued_runs: int = 16  # waiting runs; beyond this a new run is refused (503)
    max_run_epochs: int = 50
    max_run_batch_size: int = 1024
    max_run_steps_per_epoch: int = 10_000  # counted also when max_steps_per_epoch is left out
    max_run_events: int = 200_000  # events one run may store (≈ epochs × steps ÷ log_every)
    # a run's estimated peak memory (cnncore.run_cost) may be at most this (0: no fixed cap) and
    # at most run_memory_fraction of the memory the machine (or GPU) has free when it is planned
    max_run_memory_bytes: int = Field(8_000_000_000, ge=0)
    run_memory_fraction: float = Field(0.8, gt=0.0, le=1.0)
    max_run_gmacs: int = Field(5_000_000, ge=1)  # multiply-adds of a whole run, in 10⁹
    run_models: tuple[str, ...] = ("lenet5", "mlp", "tinyvgg", "alexnet", "resnet18",
                                   "mobilenet_v1", "mobilenet_v2", "googlenet")  # fmt: skip
    run_threads: int = 1  # torch threads per worker (one per run keeps runs from fighting)
    # Worker processes never fork the server: "forkserver" forks them from a clean helper
    # process that has imported torch once (a run starts in milliseconds); "spawn" starts a
    # fresh interpreter per run (seconds: torch is imported again every time).
    run_start_method: Literal["forkserver", "spawn"] = "forkserver"
    run_checkpoints_kept: int = 3  # newest epoch checkpoints kept per run (plus the final one)
    # exports of a finished run (/api/runs/{id}/export; app/runs/export.py): made at most this
    # many at once (an ONNX export takes seconds of CPU and a few times the weights' memory); a
    # request waits this long for a free slot, then is refused (503)
    run_export_concurrency: int = Field(1, ge=1)
    run_export_wait_seconds: float = Field(30.0, gt=0.0)
    run_replay_batch: int = 1000  # events read from the database at once for a replay
    run_poll_seconds: float = 0.25  # how often a run driven by another process is re-read
    run_ping_seconds: float = 15.0  # SSE keep-alive comment interval
    # a worker still running this long after a stop (a step of minutes, a frozen process) is killed
    run_stop_grace_seconds: float = Field(30.0, gt=0.0)
    # liveness by heartbeats in the database (app/runs/liveness.py): every run's driver beats
    # this often, and a run silent for run_dead_after_seconds (any host) is marked interrupted
    run_heartbeat_seconds: float = Field(5.0, gt=0.0)
    run_dead_after_seconds: float = Field(60.0, gt=0.0)
    # a worker that has not sent its first heartbeat yet (its process still starting: torch
    # imports, datasets, a loaded machine) is given this long, from its start, instead
    run_start_seconds: float = Field(300.0, gt=0.0)
    datasets_dir: Path | None = None  # local MNIST / Fashion-MNIST / CIFAR-10 files, if any

    # --- a student's own datasets (/api/datasets; rows in the runs database, pictures under
    # data_dir/datasets) ----------------------------------------------------------------------
    dataset_max_images: int = Field(2000, ge=1)  # pictures of one dataset
    dataset_max_classes: int = Field(20, ge=2)  # classes of one dataset
    dataset_max_bytes: int = Field(50_000_000, ge=1)  # kept PNG bytes of one dataset
    dataset_max_pixels: int = Field(40_000_000, ge=1)  # kept pixels of one dataset, all pictures
    dataset_image_side: int = Field(128, ge=16, le=512)  # longer side a picture is kept at
    dataset_upload_bytes: int = Field(40_000_000, ge=1)  # one upload request (files or a zip)
    dataset_upload_files: int = Field(200, ge=1)  # pictures in one upload request
    # width × height of a zip's pictures, all together, from their headers before decoding
    dataset_zip_pixels: int = Field(400_000_000, ge=1)
    # how many datasets are kept (README, "Your own datasets"): per owner token (one
    # browser), per client address (a class of 40 behind one school NAT address, 10 each),
    # everyone's together; and the PNG bytes of every dataset together (disk)
    owner_max_datasets: int = Field(10, ge=1)
    client_max_datasets: int = Field(400, ge=1)
    datasets_max_count: int = Field(2000, ge=1)
    datasets_max_bytes: int = Field(5_000_000_000, ge=1)
    # /train's confusion matrix opening its pictures (/api/runs/{id}/heldout): values
    # (pictures × channels × height × width, one byte each) one run's held-out list may hold,
    # and how many runs' lists are kept
    heldout_max_values: int = Field(30_000_000, ge=1)
    heldout_cache_runs: int = Field(2, ge=1, le=16)
    # a class builds a dataset together (app/class_pictures.py): pictures students sent that
    # wait for the teacher, per student and per session; their kept PNG bytes, every session
    # together; decided outcomes a session remembers for its students
    class_pictures_per_student: int = Field(5, ge=1)
    class_pictures_pending: int = Field(60, ge=1)
    class_pictures_bytes: int = Field(30_000_000, ge=1)
    class_pictures_decided: int = Field(500, ge=1)

    @model_validator(mode="after")
    def _sessions_fit_their_memory(self) -> "Settings":
        from app.session_limits import HubLimits, session_memory_bound

        need = self.max_class_sessions * session_memory_bound(HubLimits.from_settings(self))
        if need > self.class_memory_bytes:
            raise ValueError(
                f"{self.max_class_sessions} class sessions at their limits may hold {need} bytes, "
                f"over class_memory_bytes = {self.class_memory_bytes}: lower a session limit "
                "or raise the budget"
            )
        return self

    @property
    def checkpoints_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def weights_dir(self) -> Path:
        return self.data_dir / "weights"

    @property
    def user_datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "cnnviz.sqlite3"


@lru_cache
def get_settings() -> Settings:
    return Settings()
