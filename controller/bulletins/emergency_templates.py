"""Emergency templates (issue 14): the five messages a ward airs at once — bão, lũ, cháy, mất
điện, sự cố — with their audio rendered when the controller starts, so an emergency made from one
airs without waiting for speech synthesis.

The audio goes into the rendered-audio cache (``settings.cache_dir``) with the options an emergency
bulletin is rendered with (:func:`render_options` with ``priority="emergency"``, the ward-wide
dictionary): a bulletin of the same text is then a cache hit. A ward whose own dictionary reads a
word of the template differently renders it afresh (still correct, only slower). Each controller
renders its own (the cache is local); :attr:`TemplateAudio.ready` says which are done here."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import tts
from controller.bulletins.dictionary import load_dictionary
from controller.bulletins.speech_settings import TtsSettings, render_options
from controller.core.db import Database

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Template:
    key: str
    name: tuple[str, str]  # (Vietnamese, English): the button's label
    text: str  # what is read aloud (always Vietnamese: the ward hears it)


TEMPLATES: tuple[Template, ...] = (
    Template("bao", ("Bão", "Storm"),
             "Khẩn cấp: bão đang đến gần địa bàn phường. Đề nghị bà con ở trong nhà, chằng chống nhà "
             "cửa, thu dọn đồ vật dễ bị gió cuốn, không ra sông, ra biển. Theo dõi thông báo tiếp theo "
             "của phường."),
    Template("lu", ("Lũ lụt", "Flood"),
             "Khẩn cấp: nước sông đang lên nhanh, có nguy cơ ngập lụt. Đề nghị bà con ở vùng trũng đưa "
             "người và tài sản lên chỗ cao, không đi qua chỗ nước chảy xiết. Theo dõi thông báo tiếp theo "
             "của phường."),
    Template("chay", ("Cháy", "Fire"),
             "Khẩn cấp: đang có cháy trên địa bàn phường. Đề nghị bà con ở gần đám cháy ra khỏi nhà, "
             "tránh xa khu vực cháy, nhường đường cho xe chữa cháy. Khi thấy cháy, gọi ngay số một một "
             "bốn."),
    Template("matdien", ("Mất điện", "Power cut"),
             "Thông báo khẩn: điện lưới trên địa bàn phường đang bị gián đoạn. Đề nghị bà con tắt các "
             "thiết bị điện, tránh xa dây điện bị đứt, không tự sửa đường dây. Phường sẽ thông báo khi có "
             "điện lại."),
    Template("suco", ("Sự cố", "Incident"),
             "Khẩn cấp: đang có sự cố trên địa bàn phường. Đề nghị bà con bình tĩnh, ở yên trong nhà, "
             "làm theo hướng dẫn của lực lượng chức năng và theo dõi thông báo tiếp theo của phường."),
)


@dataclass
class TemplateAudio:
    """Renders the templates' audio in the background once started; ``ready``: the keys done."""

    cfg: TtsSettings
    cache_dir: Path
    db: Database
    ready: set[str] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None

    def _render(self, t: Template) -> None:
        with self.db.session() as s:
            dictionary = load_dictionary(s, None)
        tts.render(t.text, cache_dir=self.cache_dir, dictionary=dictionary,
                   **render_options(self.cfg, priority="emergency"))

    async def _run(self) -> None:
        for t in TEMPLATES:
            try:
                await asyncio.to_thread(self._render, t)
            except tts.TTSError as exc:  # the speech engine is down: the template still works, slower
                logger.warning("emergency template %s not rendered ahead: %s", t.key, exc)
                continue
            self.ready.add(t.key)
        logger.info("emergency templates: %d of %d rendered ahead", len(self.ready), len(TEMPLATES))

    async def start(self) -> None:
        if self.cfg.prerender_emergency:
            self._task = asyncio.create_task(self._run(), name="emergency templates")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
