// Draws the current slice of the main viewer in the browser (a Bokeh CustomJS body; app/viewer.py).
// args: meta (JSON record of app/slice_payload.case_meta), nav (navigation chosen on the server), volume (ct int16, truth uint8), shown (pred
// uint8), images (the drawn layers: columns ct, truth, pred) / boxes (the sources drawn), fig, xaxis, yaxis, slider, views (the view
// buttons), ct_mapper, truth_glyph, pred_glyph. The drawn data is set with {sync: false}: pixels never
// travel to the server. The server follows the view buttons and the slider's value_throttled (keys:
// debounced), and sends its own navigation through `nav`.
const N0 = nav.data;
// navigation chosen on the server (a jump, a case), applied once per `seq` whichever change comes first
// (a new case's navigation can arrive before its record: it must not be lost)
if (N0.seq[0] !== slider.__rstn_seq) {
  slider.__rstn_seq = N0.seq[0];
  views.setv({active: Math.max(0, views.labels.indexOf(N0.view[0]))}, {sync: false});
  slider.setv({end: N0.end[0], step: N0.step[0], value: N0.slice[0]}, {sync: false});
}
const M = JSON.parse((meta.data.json && meta.data.json[0]) || "{}");
if (!M.shape) return;
const name = views.labels[views.active];
const V = M.views[name];
if (cb_obj === views) {  // a view switch in the browser: open the view at its organ slice
  slider.setv({end: Math.max(V.n - 1, 1), value: Math.min(V.centre, V.n - 1)}, {sync: false});
}
const vol = volume.data;
const nvox = M.shape[0] * M.shape[1] * M.shape[2];
if (!vol.ct || !vol.ct[0] || vol.ct[0].length !== nvox) return;  // the case's arrays are still on their way
const ndarray = Bokeh.require("core/util/ndarray").ndarray;
const quiet = {sync: false};
const a = V.axis, ah = V.axes[0], aw = V.axes[1];
const H = M.shape[ah], W = M.shape[aw], N = H * W;
const strides = [M.shape[1] * M.shape[2], M.shape[2], 1];
const value = Math.max(0, Math.min(Math.round(slider.value), V.n - 1));
const s = Math.min(Math.floor(value / M.step), M.shape[a] - 1);
const base = s * strides[a], sh = strides[ah], sw = strides[aw];

// display row j (0 = bottom) is the view's W index j; column c (0 = left) is H index H-1-c (radiological)
function take(src, out) {
  for (let j = 0; j < W; j++) {
    const row = j * H, off = base + j * sw + (H - 1) * sh;
    for (let c = 0; c < H; c++) out[row + c] = src[off - c * sh];
  }
  return out;
}
function contour(m) {  // inner boundary: inside with a 4-neighbour outside (the image edge counts as outside)
  const out = new Uint8Array(N);
  for (let j = 0; j < W; j++) for (let c = 0; c < H; c++) {
    const i = j * H + c;
    if (!m[i]) continue;
    const inner = j > 0 && j < W - 1 && c > 0 && c < H - 1 && m[i - H] && m[i + H] && m[i - 1] && m[i + 1];
    out[i] = inner ? 0 : 1;
  }
  return out;
}

const hu = take(vol.ct[0], new Float32Array(N));
const t = M.has_truth && vol.truth[0].length === nvox ? take(vol.truth[0], new Uint8Array(N)) : null;
const predArr = shown.data.pred && shown.data.pred[0];
const p = M.has_round && predArr && predArr.length === nvox ? take(predArr, new Uint8Array(N)) : null;
const truthLayer = new Uint8Array(N), predLayer = new Uint8Array(N);  // codes: 1 TP 2 FP 3 FN 4 truth 5 pred
const byErrors = M.errors && M.has_round && M.show_prediction;
if (t && M.show_truth && !byErrors) {
  const m = M.outline ? contour(t) : t;
  for (let i = 0; i < N; i++) if (m[i]) truthLayer[i] = 4;
}
if (p && M.show_prediction) {
  if (M.errors && t) {
    for (let i = 0; i < N; i++) predLayer[i] = p[i] ? (t[i] ? 1 : 2) : (t[i] ? 3 : 0);
    if (M.outline) {
      const keep = new Uint8Array(N);
      for (const code of [1, 2, 3]) {
        const edge = contour(predLayer.map((v) => (v === code ? 1 : 0)));
        for (let i = 0; i < N; i++) if (edge[i]) keep[i] = 1;
      }
      for (let i = 0; i < N; i++) if (!keep[i]) predLayer[i] = 0;
    }
  } else {
    const m = M.outline ? contour(p) : p;
    for (let i = 0; i < N; i++) if (m[i]) predLayer[i] = 5;
  }
}

const place = {x: [0], y: [0], dw: [V.dw], dh: [V.dh]};
images.setv({data: {ct: [ndarray(hu, {shape: [W, H]})], truth: [ndarray(truthLayer, {shape: [W, H]})],
                    pred: [ndarray(predLayer, {shape: [W, H]})], ...place}}, quiet);
const rows = M.show_boxes ? V.boxes.filter((r) => r[0] === value) : [];
boxes.setv({data: {left: rows.map((r) => r[1]), bottom: rows.map((r) => r[2]), right: rows.map((r) => r[3]),
                   top: rows.map((r) => r[4]), round: rows.map((r) => r[5]), color: rows.map((r) => r[6])}}, quiet);
ct_mapper.setv({low: M.clim[0], high: M.clim[1]}, quiet);
truth_glyph.setv({global_alpha: M.opacity}, quiet);
pred_glyph.setv({global_alpha: M.opacity}, quiet);
fig.title.setv({text: `${M.case_id} · ${name} slice ${value}/${V.n - 1}${M.round_label}`}, quiet);
if (fig.__rstn_geom !== V.geom_key) {  // a new case or view: the frame follows it (a zoom survives slice changes)
  fig.__rstn_geom = V.geom_key;
  fig.x_range.setv({start: 0, end: V.dw, reset_start: 0, reset_end: V.dw}, quiet);
  fig.y_range.setv({start: 0, end: V.dh, reset_start: 0, reset_end: V.dh}, quiet);
  xaxis.setv({axis_label: V.xlabel}, quiet);
  yaxis.setv({axis_label: V.ylabel}, quiet);
  fig.setv({frame_width: V.frame[0], frame_height: V.frame[1]}, quiet);
}
window.__rstn_drawn = {value: value, view: name, version: M.version, at: performance.now(),
                       count: ((window.__rstn_drawn && window.__rstn_drawn.count) || 0) + 1};
