"""PretrainDataModule: WebVid-style video shards and CC3M-style image shards, alternating batch by batch.

The settings are the constructor's arguments (the YAML keys under ``data.init_args``), kept as attributes; the
pipelines are built from them in ``setup``. The samples come from :mod:`clover_pl.data.pretrain_samples`.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from clover_pl.data.collate import stack
from clover_pl.data.global_batch import check_global_batch
from clover_pl.data.gpu_decode import VideoDecoder, decode_video_cuda, resolve_video_decoder
from clover_pl.data.masking import TextMasker, TextMasking
from clover_pl.data.mixing import SCHEDULES, Schedule, SourceMixer
from clover_pl.data.pipeline import ShardPipeline
from clover_pl.data.pos_tagging import (
    POS_TAGGERS,
    SPACY_INSTALL_HINT,
    PosTaggerChoice,
    SpacyModelMissingError,
    default_tagger,
    tagger_name,
)
from clover_pl.data.pos_units import PartOfSpeechTagger
from clover_pl.data.pretrain_samples import SKIP_REASONS, PretrainDecoder, RetrievalDecoder
from clover_pl.data.shards import count_samples, expand_urls
from clover_pl.data.skip_ledger import SkipLedger
from clover_pl.data.text import load_tokenizer
from clover_pl.data.transforms import ClipTransform
from clover_pl.data.video import decode_video
from clover_pl.data.video_masking import BlockMaskGenerator


class PretrainDataModule(L.LightningDataModule):
    """Streams pretraining shards; validates on a held-out retrieval set.

    Args:
        tokenizer: local BERT directory or ``vocab.txt`` for the tokenizer.
        video_shards: video shards (``.mp4`` + ``.txt`` + ``.json``, as video2dataset writes them): a brace
            pattern, a list, local paths or URLs (``pipe:`` URLs only with ``allow_pipe_urls``). None for none.
        image_shards: image shards (``.jpg`` + ``.txt``, as img2dataset writes them); images are one-frame clips.
        validation_shards: held-out clips with one caption each, for zero-shot retrieval during fit.
        schedule: how sources share the steps: ``"alternate"`` (one batch from each in turn, as the release) or
            ``"weighted"`` (each step's source drawn with probabilities proportional to ``weights``).
        weights: per-source weights (video source first, then images) of the weighted schedule.
        resampled: draw shards with replacement, forever (no exactly-once; epochs are ``epoch_batches`` steps).
        epoch_batches: steps per epoch in resampled mode (default: the exactly-once estimate from the shard
            statistics).
        batch_size: clips per batch and rank.
        validation_batch_size: clips per validation batch and rank.
        num_frames: frames per training clip (TSN segment sampling, one random frame per segment).
        validation_frames: frames per validation clip (segment centres).
        image_size: side of the square crops.
        crop_scale: area range of the random-resized crop.
        short_side: resize frames at decode time so the short side is this (bounds memory); None keeps them.
        decode_threads: FFmpeg codec threads per DataLoader worker (1 is fastest for H.264 on few cores).
        normalize_on_device: the lean sample path: clips stay uint8 through the workers and the pinned-memory
            transfer, and the task normalises the batch on the accelerator (``on_after_batch_transfer``). False
            normalises in the workers (float32 batches, 4x the bytes). Same frames, crops and random draws either way.
        video_decoder: ``"cpu"`` (PyAV) or ``"torchcodec_cuda"`` (NVDEC through torchcodec, see
            `clover_pl.data.gpu_decode`); the GPU decoder falls back to ``"cpu"`` with one message when no GPU or no
            torchcodec is present.
        max_text_length: caption length in tokens, [CLS] and [SEP] included; longer captions are truncated.
        text_masking: ``"semantic"`` (nouns and verbs, Clover), ``"whole_word"`` or ``"random"``.
        pos_tagger: part-of-speech tagger of semantic masking: ``"spacy"`` (the release's; an error naming the
            model when it is not installed), ``"lexicon"`` (offline approximation) or ``"auto"`` (spaCy when
            installed, else the lexicon). The tagger used is logged.
        spacy_model: the spaCy pipeline package of ``pos_tagger: spacy`` (``en_core_web_sm``, as the release).
        mask_probability: fraction of candidate words masked.
        video_mask_grid: cell grid of the video mask, the final token grid of the video encoder (7 x 7 at 224 px).
        video_mask_cells: cells masked per clip.
        num_workers: DataLoader workers per source.
        shuffle_buffer: samples in the shuffle buffer of each worker.
        seed: base seed of shard order, sample order, augmentation and masking (combined with the epoch).
        max_skip_rate: stop the run when more than this fraction of the samples read so far were skipped (bad
            videos, empty captions, samples lost in damaged shards), once ``skip_check_after`` samples were read.
            Failed downloads kept by video2dataset are counted apart and not against it.
        skip_check_after: samples read before the skip rate is checked.
        allow_pipe_urls: accept ``pipe:`` shard URLs. webdataset runs them as shell commands on every data worker,
            so this trusts whoever wrote the config (refused by default).
        published_global_batch: the global batch (clips per optimiser step) the config was published with;
            ``fit`` stops with one line when devices x nodes x batch_size x accumulation differs. None: no check.
        allow_global_batch_mismatch: run anyway (with a warning) when the global batch differs.
    """

    def __init__(
        self,
        tokenizer: str,
        video_shards: str | list[str] | None = None,
        image_shards: str | list[str] | None = None,
        validation_shards: str | list[str] | None = None,
        schedule: Schedule = "alternate",
        weights: list[float] | None = None,
        resampled: bool = False,
        epoch_batches: int | None = None,
        batch_size: int = 32,
        validation_batch_size: int = 64,
        num_frames: int = 8,
        validation_frames: int = 8,
        image_size: int = 224,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        short_side: int | None = None,
        decode_threads: int = 1,
        normalize_on_device: bool = True,
        video_decoder: VideoDecoder = "cpu",
        max_text_length: int = 30,
        text_masking: TextMasking = "semantic",
        pos_tagger: PosTaggerChoice = "auto",
        spacy_model: str = "en_core_web_sm",
        mask_probability: float = 0.3,
        video_mask_grid: tuple[int, int] = (7, 7),
        video_mask_cells: int = 10,
        num_workers: int = 2,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        max_skip_rate: float = 0.2,
        skip_check_after: int = 1000,
        allow_pipe_urls: bool = False,
        published_global_batch: int | None = None,
        allow_global_batch_mismatch: bool = False,
    ) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
        if not 0.0 <= max_skip_rate <= 1.0:
            raise ValueError(f"data.init_args.max_skip_rate must lie in [0, 1], got {max_skip_rate}")
        if pos_tagger not in POS_TAGGERS:
            raise ValueError(f"data.init_args.pos_tagger must be one of {', '.join(POS_TAGGERS)}, got {pos_tagger!r}")
        self.save_hyperparameters()  # the checkpoint and TensorBoard keep the settings
        self.tokenizer_path = tokenizer
        self.video_shards = video_shards
        self.image_shards = image_shards
        self.validation_shards = validation_shards
        self.schedule = schedule
        self.weights = weights
        self.resampled = resampled
        self.epoch_batches = epoch_batches
        self.batch_size = batch_size
        self.validation_batch_size = validation_batch_size
        self.num_frames = num_frames
        self.validation_frames = validation_frames
        self.image_size = image_size
        self.crop_scale = crop_scale
        self.short_side = short_side
        self.decode_threads = decode_threads
        self.normalize_on_device = normalize_on_device
        self.video_decoder = video_decoder
        self.max_text_length = max_text_length
        self.text_masking = text_masking
        self.pos_tagger = pos_tagger
        self.spacy_model = spacy_model
        self.mask_probability = mask_probability
        self.video_mask_grid = video_mask_grid
        self.video_mask_cells = video_mask_cells
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.max_skip_rate = max_skip_rate
        self.skip_check_after = skip_check_after
        self.allow_pipe_urls = allow_pipe_urls
        self.published_global_batch = published_global_batch
        self.allow_global_batch_mismatch = allow_global_batch_mismatch
        self.mixer: SourceMixer | None = None
        self.sources: list[ShardPipeline] = []
        self.validation: ShardPipeline | None = None
        self.video_engine: VideoDecoder = "cpu"  # the decoder that runs: video_decoder, or "cpu" after a fallback

    def setup(self, stage: str) -> None:
        """Check the shard lists and build the pipelines (clear errors before training starts)."""
        if stage == "fit":
            check_global_batch(
                self.trainer,
                self.batch_size,
                self.published_global_batch,
                allow_mismatch=self.allow_global_batch_mismatch,
            )
        tokenizer = load_tokenizer(self.tokenizer_path)
        tagger = self._tagger() if self.text_masking == "semantic" else None
        masker = TextMasker(
            tokenizer, self.max_text_length, self.text_masking, self.mask_probability, tagger=tagger, seed=self.seed
        )
        cells = BlockMaskGenerator((self.video_mask_grid[0], self.video_mask_grid[1]), self.video_mask_cells)
        lean = self.normalize_on_device
        train_transform = ClipTransform(size=self.image_size, train=True, scale=self.crop_scale, normalize=not lean)
        test_transform = ClipTransform(size=self.image_size, train=False, normalize=not lean)
        self.video_engine = resolve_video_decoder(self.video_decoder)
        decode = decode_video_cuda if self.video_engine == "torchcodec_cuda" else decode_video
        if stage == "fit":
            given = [urls for urls in (self.video_shards, self.image_shards) if urls]
            if not given:
                raise ValueError("no training shards: set data.init_args.video_shards and/or image_shards")
            self.sources = []
            for urls in given:
                if not expand_urls(urls):
                    raise ValueError(f"the shard list {urls!r} is empty")
                decoder = PretrainDecoder(
                    masker, cells, train_transform, self.num_frames, self.short_side, self.decode_threads, decode
                )
                self.sources.append(
                    ShardPipeline(
                        urls,
                        decoder,
                        stack,
                        self.batch_size,
                        seed=self.seed,
                        shuffle=True,
                        shuffle_buffer=self.shuffle_buffer,
                        drop_last=True,
                        resampled=self.resampled,
                        allow_pipe_urls=self.allow_pipe_urls,
                        emit_tally=True,
                    )
                )
        if stage in ("fit", "validate") and self.validation_shards:
            validation_decoder = RetrievalDecoder(
                tokenizer, test_transform, self.validation_frames, self.max_text_length, self.short_side
            )
            self.validation = ShardPipeline(
                self.validation_shards,
                validation_decoder,
                stack,
                self.validation_batch_size,
                seed=self.seed,
                shuffle=False,
                shuffle_buffer=0,
                drop_last=False,
                allow_pipe_urls=self.allow_pipe_urls,
            )

    def _tagger(self) -> PartOfSpeechTagger:
        """The part-of-speech tagger ``pos_tagger`` asks for, logged; a missing spaCy model is a one-line error."""
        try:
            tagger = default_tagger(self.pos_tagger, self.spacy_model)
        except ImportError as error:
            raise SpacyModelMissingError(
                f"data.init_args.pos_tagger is 'spacy' but spaCy or its model {self.spacy_model} is not installed "
                f"({SPACY_INSTALL_HINT}); set data.init_args.pos_tagger to 'lexicon' or 'auto' to use the offline "
                "lexicon tagger instead"
            ) from error
        rank_zero_info(
            f"semantic text masking: part-of-speech tagger {tagger_name(tagger)} (pos_tagger: {self.pos_tagger})"
        )
        return tagger

    def _loader(self, dataset: ShardPipeline, *, stateful: bool = False) -> DataLoader:
        workers = self.num_workers if dataset.resampled else min(self.num_workers, len(dataset.urls))
        return (StatefulDataLoader if stateful else DataLoader)(
            dataset,
            batch_size=None,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            prefetch_factor=4 if workers else None,
            # CUDA cannot start in a forked worker: the GPU decoder's workers are spawned.
            multiprocessing_context="spawn" if workers and self.video_engine != "cpu" else None,
        )

    def current_epoch(self) -> int:
        """The trainer's epoch, 0 outside a trainer."""
        return self.trainer.current_epoch if self.trainer is not None else 0

    def trained_batches(self) -> int | None:
        """Batches of the current epoch the trainer has finished (None outside a trainer)."""
        if self.trainer is None:
            return None
        # `processed` counts a batch as soon as its step ran: it equals `completed` when a checkpoint is written
        # after validation or at an epoch end, and is already one ahead inside `on_train_batch_end` (step-interval
        # checkpoints), where Lightning counts that batch as done on restart.
        # Lightning annotates `current` as the base tracker; a `_BatchProgress` holds a `_ProcessedTracker`.
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed  # type: ignore[attr-defined]

    def epoch_loaders(self, epoch: int | None = None) -> list[StatefulDataLoader]:
        """Resumable DataLoaders of the training sources for ``epoch`` (default: the trainer's current epoch)."""
        epoch = self.current_epoch() if epoch is None else epoch
        for source in self.sources:
            source.epoch = epoch
        return [self._loader(source, stateful=True) for source in self.sources]

    def batches_per_epoch(self) -> int:
        """Upper estimate of one rank's batches per epoch from the shard statistics."""
        world = self.trainer.world_size if self.trainer is not None else 1
        total = 0
        for source in self.sources:
            workers = max(1, min(self.num_workers, len(source.urls)))
            per_worker = count_samples(source.urls) // (world * workers)
            total += workers * (per_worker // self.batch_size)
        return total

    def train_dataloader(self) -> SourceMixer:
        """Batches of all training sources, mixed by the schedule; resumable mid-epoch."""
        epoch_batches = self.epoch_batches
        if self.resampled and epoch_batches is None:
            epoch_batches = self.batches_per_epoch()
        self.mixer = SourceMixer(
            self.epoch_loaders,
            self.current_epoch,
            self.trained_batches,
            self.schedule,
            list(self.weights) if self.weights is not None else None,
            epoch_batches,
            self.seed,
            ledger=SkipLedger(SKIP_REASONS, self.max_skip_rate, self.skip_check_after),
            report=self.report_skips,
        )
        return self.mixer

    def report_skips(self, epoch: int, counts: dict[str, int]) -> None:
        """Log an epoch's skips (summed over ranks) as ``train/skipped_<reason>``, only the reasons that occurred."""
        trainer = self.trainer
        logged = {f"train/skipped_{reason}": float(count) for reason, count in counts.items() if count}
        if trainer is not None and trainer.logger is not None and logged and trainer.is_global_zero:
            trainer.logger.log_metrics(logged, trainer.global_step)
        if any(counts.values()):
            rank_zero_info(f"epoch {epoch}: skipped samples {SkipLedger.describe(counts)}")

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The held-out retrieval set, in shard order."""
        return [] if self.validation is None else self._loader(self.validation)
