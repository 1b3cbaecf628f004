"""The controls: the sidebar (model, inference, navigation, display, export), keyboard navigation and
the data panel (upload or server folder). Widgets are bound to the state's parameters; the only
callbacks write user intent (a key press, a picked file) into the state."""

from __future__ import annotations

import io
from pathlib import Path

import panel as pn
import param

from rstn_core.errors import RstnError

from . import cases
from .state import SessionState


class DataFolderPicker(pn.widgets.FileSelector):
    """Panel's FileSelector, tolerant of a typed folder it refuses: Panel 1.9.4 then leaves its options as a
    list and its own denylist filter fails with "'list' object has no attribute 'update'" (an error reply in
    the browser console and the server log). The app already tells the user; the picker stays where it was.

    Its divider is a plain ``<hr>``: Panel's ``Divider`` names its stylesheet on Panel's CDN and only a page's
    first render points it at the server, so the picker, built when its card is first opened, would ask the
    CDN (a failed request offline)."""

    def __init__(self, *args, **params) -> None:
        super().__init__(*args, **params)
        parts = list(self._composite)
        self._composite[:] = [pn.pane.HTML("<hr style='margin:4px 0'>", margin=0, sizing_mode="stretch_width")
                              if isinstance(p, pn.layout.Divider) else p for p in parts]

    def _filter_denylist(self, event) -> None:
        if not isinstance(self._selector.options, dict):
            return
        super()._filter_denylist(event)


def _not(value) -> bool:
    return not value


# the overlay switches of the display settings, as one group of check boxes: label -> parameter
LAYERS = {"TP / FP / FN colouring": "errors", "Contours instead of fill": "outline", "Ground truth": "show_truth",
          "Prediction": "show_prediction", "Crop boxes": "show_boxes"}


def _layers_on(display) -> list[str]:
    return [name for name in LAYERS.values() if getattr(display, name)]


class Sidebar(pn.viewable.Viewer):
    """Every control of the left column; widgets are bound to the state's parameters."""

    state = param.ClassSelector(class_=SessionState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        s, d = self.state, self.state.display
        labels = {s.choice_label(k): k for k in s.param.model.objects if k is not None}
        plain = {"description": None}  # no tooltip where it would repeat the label
        self.model = pn.widgets.Select.from_param(s.param.model, label="Model", options=labels,
                                                  css_classes=["model-select"], **plain)
        self.compare_model = pn.widgets.Select.from_param(s.param.compare_model, label="Baseline for comparison",
                                                          options={"(none)": None, **labels}, **plain)
        busy = s.param.busy
        self.demo = pn.widgets.Button.from_param(s.param.load_demo, label="Load demo case", disabled=busy, **plain)
        self.organ = pn.widgets.TextInput.from_param(s.param.organ, label="Organ label id(s)")
        self.coarse = pn.widgets.Button.from_param(s.param.coarse, label="Coarse", button_type="primary",
                                                   disabled=busy)
        self.step = pn.widgets.Button.from_param(s.param.step, label="Step", button_type="primary",
                                                 disabled=pn.bind(_not, s.param.can_step))
        self.run = pn.widgets.Button.from_param(s.param.run, label="Run to convergence", button_type="primary",
                                                disabled=pn.bind(_not, s.param.can_step))
        self.cancel = pn.widgets.Button.from_param(s.param.cancel, label="Cancel", button_type="warning",
                                                   disabled=pn.bind(_not, busy))
        self.reset = pn.widgets.Button.from_param(s.param.reset, label="Reset", disabled=busy)
        self.compare = pn.widgets.Button.from_param(s.param.compare, label="Compare with baseline", disabled=busy)
        self.progress = pn.indicators.Progress(value=s.param.progress, active=busy, max=100, width=280,
                                               bar_color="primary", css_classes=["run-progress"])
        self.round = pn.widgets.IntSlider(label="Round shown", start=0, value=s.param.round_index,
                                          end=pn.bind(lambda r: max(len(r) - 1, 1), s.param.rounds),
                                          disabled=pn.bind(lambda r: len(r) < 2, s.param.rounds),
                                          css_classes=["round-slider"])
        self.round.param.watch(lambda e: setattr(s, "round_index", min(int(e.new), max(len(s.rounds) - 1, 0))),
                               "value")
        self.worst = pn.widgets.Button.from_param(s.param.jump_to_error, label="Jump to the worst slice", **plain)
        self.window = pn.widgets.Select.from_param(d.param.window, label="Window")
        self.opacity = pn.widgets.FloatSlider.from_param(d.param.opacity, label="Overlay opacity", step=0.05)
        # the custom level/width inputs are built when the custom window is first chosen
        self.custom = pn.Row(visible=pn.bind(lambda w: w == "custom", d.param.window), margin=0)
        self.level = self.width = None
        d.param.watch(self._on_window, "window")
        self.checks = pn.widgets.CheckBoxGroup(options=dict(LAYERS), value=_layers_on(d), inline=False,
                                               css_classes=["layer-checks"])
        self.checks.param.watch(lambda e: d.param.update({k: k in e.new for k in LAYERS.values()}), "value")
        d.param.watch(lambda e: setattr(self.checks, "value", _layers_on(d)), list(LAYERS.values()))
        self.download = pn.widgets.FileDownload(
            callback=self._report, label="Export HTML report", button_type="success", embed=False,
            css_classes=["report-download"], disabled=busy,
            filename=pn.bind(lambda c: f"rstn_report_{c.case_id}.html" if c else "rstn_report.html", s.param.case))

    def _on_window(self, event) -> None:
        if event.new == "custom" and self.level is None:
            d = self.state.display
            self.level = pn.widgets.FloatInput.from_param(d.param.level, label="Custom level (HU)", width=130)
            self.width = pn.widgets.FloatInput.from_param(d.param.width, label="Custom width (HU)", width=130)
            self.custom.objects = [self.level, self.width]

    def _report(self):
        from . import report

        if self.state.busy:  # the button is disabled while a run is going; a late click gets a message
            self.state.error = "report: wait until the current run finishes (a report mid-run would be partial)"
            return io.BytesIO(b"")
        try:
            text = report.report_for_session(self.state)
        except Exception as exc:  # noqa: BLE001 - show it, keep the page
            self.state.error = f"report: {exc}"
            text = f"<html><body><p>Report failed: {exc}</p></body></html>"
        return io.BytesIO(text.encode("utf-8"))

    def __panel__(self):
        return pn.Column(
            _heading("Model"), self.model, self.compare_model,
            _heading("Case"), self.demo, self.organ,
            _heading("Inference", "Other CTs: <b>Load another CT</b> above the images."),
            pn.Row(self.coarse, self.step), self.run, pn.Row(self.cancel, self.reset), self.compare, self.progress,
            _heading("Navigation"), self.round, self.worst,
            _heading("Display", "View and slice: the buttons and the slider above the image, or the ↑/↓ keys."),
            self.window, self.custom, self.opacity, self.checks,
            _heading("Export"), self.download,
            width=320, css_classes=["sidebar"])


def _heading(title: str, note_before: str = "") -> pn.pane.HTML:
    """A section title (plain HTML: no Markdown parsed per session), after a note that ends the previous one."""
    note = f"<p style='margin:0 0 4px 0'>{note_before}</p>" if note_before else ""
    return pn.pane.HTML(f"{note}<h3 style='margin:6px 0 0 0'>{title}</h3>", margin=(0, 10))


class UploadScripts(pn.custom.JSComponent):
    """Loads the upload widget's scripts and stylesheets (Panel's FileDropper: FilePond) into the page when the
    data panel is first opened, then sets ``loaded``; they are not part of every page (they took ~0.4 s of each
    page's start in the browser). Where FilePond is already there (a notebook that called
    ``pn.extension("filedropper")``), ``loaded`` is set at once."""

    js = param.List(default=[], doc="script URLs, loaded in order")
    css = param.List(default=[], doc="stylesheet URLs")
    loaded = param.Boolean(default=False, doc="set by the browser once every script has loaded")

    _esm = """
    export function render({ model }) {
      const note = document.createElement('span');
      note.className = 'upload-scripts';
      if (window.FilePond) { model.loaded = true; return note; }
      note.textContent = 'loading the upload widget…';
      for (const href of model.css) {
        const link = document.createElement('link');
        link.rel = 'stylesheet'; link.href = href;
        document.head.appendChild(link);
      }
      const load = (src) => new Promise((ok, fail) => {
        const script = document.createElement('script');
        script.src = src; script.onload = ok;
        script.onerror = () => fail(new Error('could not load ' + src));
        document.head.appendChild(script);
      });
      (async () => { for (const src of model.js) await load(src); note.textContent = ''; model.loaded = true; })()
        .catch((e) => { note.textContent = e.message + ' (in a notebook: pn.extension("filedropper"))'; });
      return note;
    }
    """

    @classmethod
    def for_file_dropper(cls) -> UploadScripts:
        from panel.models.file_dropper import FileDropper

        return cls(js=list(FileDropper.__javascript__), css=list(FileDropper.__css__), margin=0)


class DataPanel(pn.viewable.Viewer):
    """Upload a NIfTI, or pick files in the server's data folder (nothing outside it)."""

    state = param.ClassSelector(class_=SessionState)
    root = param.Parameter(default=None, doc="the data folder (Path)")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        s = self.state
        self.root = Path(self.root or cases.data_root()).resolve()
        self._last_selected: str | None = None
        self.image_drop = pn.widgets.FileDropper(
            name="CT (NIfTI)", label="Drop a CT (.nii / .nii.gz)", multiple=False,
            max_file_size=f"{cases.MAX_UPLOAD_MB}MB", chunk_size=4_000_000, css_classes=["image-drop"])
        self.label_drop = pn.widgets.FileDropper(
            name="Label map (optional)", label="Drop its label map (optional)", multiple=False,
            max_file_size=f"{cases.MAX_UPLOAD_MB}MB", chunk_size=4_000_000)
        self.scripts = UploadScripts.for_file_dropper()
        self.load_upload = pn.widgets.Button(label="Load uploaded files", disabled=s.param.busy)
        self.load_upload.on_click(self._on_upload)
        limit = f"Uploads: NIfTI only, at most {cases.MAX_UPLOAD_MB} MB per file (RSTN_MAX_UPLOAD_MB)."
        self.upload = pn.Column("#### Upload a NIfTI", limit, self.scripts, width=340)
        self.scripts.param.watch(self._show_upload_widgets, "loaded")
        self._show_upload_widgets()
        root = str(self.root)
        self.picker = DataFolderPicker(directory=root, root_directory=root, only_files=False,
                                              width=600, label="Server data folder", css_classes=["file-picker"])
        self.picker.param.watch(self._on_selection, "value")
        typed = getattr(self.picker, "_directory", None)  # the picker's own path box
        if typed is not None:
            typed.param.watch(self._on_typed, "value")
        self.as_image = pn.widgets.Button(label="Selected → image")
        self.as_label = pn.widgets.Button(label="Selected → label")
        self.as_image.on_click(lambda e: self.pick("image_path"))
        self.as_label.on_click(lambda e: self.pick("label_path"))
        self.load_files = pn.widgets.Button.from_param(s.param.load_files, label="Load server files",
                                                       disabled=s.param.busy)

    def _show_upload_widgets(self, *events) -> None:
        """The drop areas and their button join the upload column once the browser has their scripts."""
        if self.scripts.loaded and self.image_drop not in self.upload.objects:
            self.upload.objects = [*self.upload.objects, self.image_drop, self.label_drop, self.load_upload]

    def _on_selection(self, event) -> None:
        """Remember the entry chosen last (the picker keeps a list; its first item is not the newest)."""
        added = [v for v in (event.new or []) if v not in (event.old or [])]
        if added:
            self._last_selected = added[-1]
        elif event.new:
            if self._last_selected not in event.new:
                self._last_selected = event.new[-1]
        else:
            self._last_selected = None

    def _on_typed(self, event) -> None:
        try:
            cases.inside_root(event.new, self.root)
        except RstnError:
            self.state.error = (f"{event.new} is outside the data folder {self.root}; the picker only shows "
                                f"files inside it (set RSTN_DATA_ROOT to use another folder)")

    def pick(self, target: str) -> None:
        """Set ``image_path`` or ``label_path`` to the entry chosen last in the picker."""
        chosen = self._last_selected
        if chosen is None:
            self.state.error = "select a file or DICOM folder in the data folder first"
            return
        try:
            path = cases.inside_root(chosen, self.root)
        except RstnError as exc:
            self.state.error = str(exc)
            return
        setattr(self.state, target, str(path))
        self.state.error = ""
        self.state.status = f"{target.replace('_', ' ')}: {path}"

    def _on_upload(self, event) -> None:
        images = dict(self.image_drop.value or {})
        if not images:
            self.state.error = "drop a CT file (.nii or .nii.gz) first"
            return
        image_name, image_bytes = next(iter(images.items()))
        labels = dict(self.label_drop.value or {})
        label_name, label_bytes = next(iter(labels.items())) if labels else (None, None)
        self.state.load_upload(image_name, _as_bytes(image_bytes), label_name,
                               None if label_bytes is None else _as_bytes(label_bytes))

    def __panel__(self):
        s = self.state
        paths = pn.pane.Markdown(pn.bind(lambda i, lab: f"image: `{i or '–'}`  \nlabel: `{lab or '–'}`",
                                         s.param.image_path, s.param.label_path))
        return pn.Row(
            self.upload,
            pn.Column(f"#### Server data folder `{self.root}`",
                      "Select a NIfTI file or a DICOM folder, then set it as the image (and a label map).",
                      self.picker, pn.Row(self.as_image, self.as_label), paths, self.load_files, width=620),
            css_classes=["data-panel"])


def _as_bytes(value) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)
