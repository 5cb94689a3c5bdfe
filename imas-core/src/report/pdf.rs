//! The PDF report (feature `pdf`): a title block with the filters and the
//! generation time, a summary (counts by status and priority, breached, mean
//! times to acknowledge and to resolve), then a table of the incidents over as
//! many A4 landscape pages as needed, with the header row repeated and "page X of
//! Y" on each.
//!
//! [`PdfReport`] writes the document as rows arrive and hands out the bytes
//! written so far, so memory does not grow with the number of rows: each page
//! is written (deflated) when it is full. The summary and the page total are only
//! known at the end, so pages draw them as form XObjects whose content is
//! written last. Text uses DejaVu Sans Condensed, embedded (its licence allows
//! it): Latin, Greek and Cyrillic render; a character the font lacks (CJK, for
//! one) is drawn as `?` and the document stays valid. Cells never overflow: long
//! text is cut with an ellipsis.

use std::fmt::Write as _;
use std::sync::OnceLock;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Chunk, Content, Filter, Finish, Name, Rect, Ref, Str, TextStr};

use super::IncidentSummary;
use crate::error::{Error, Result};
use crate::model::{Incident, Timestamp};

static FONT_DATA: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansCondensed.ttf");

/// A4 landscape, in points.
const PAGE_W: f32 = 842.0;
const PAGE_H: f32 = 595.0;
const MARGIN: f32 = 36.0;
const TABLE_SIZE: f32 = 7.0;
const ROW_H: f32 = 12.0;
/// Height of the title and summary block on the first page.
const FIRST_PAGE_BLOCK: f32 = 118.0;
const SUMMARY_H: f32 = 52.0;

/// Table columns: heading and width in points (they add up to the usable width).
const COLUMNS: [(&str, f32); 9] = [
    ("ID", 146.0),
    ("Title", 196.0),
    ("Priority", 38.0),
    ("Status", 50.0),
    ("Assignee", 146.0),
    ("Created (UTC)", 62.0),
    ("SLA deadline (UTC)", 66.0),
    ("Breached", 36.0),
    ("Level", 30.0),
];
const CELL_PAD: f32 = 2.0;

/// Table rows on the first page (below the title block and summary).
pub const FIRST_PAGE_ROWS: u32 = rows_below(PAGE_H - MARGIN - FIRST_PAGE_BLOCK);
/// Table rows on every later page.
pub const ROWS_PER_PAGE: u32 = rows_below(PAGE_H - MARGIN);

/// Rows that fit between the header row under `top` and the bottom margin.
const fn rows_below(top: f32) -> u32 {
    ((top - ROW_H - MARGIN) / ROW_H) as u32
}

/// What the report says about itself on its first page.
#[derive(Debug, Clone, Default)]
pub struct PdfMeta {
    /// The filters used, as `(name, value)` pairs; empty: "none".
    pub filters: Vec<(String, String)>,
    /// When the report was generated.
    pub generated_at: Timestamp,
}

/// The embedded font: glyph lookup, advances, and the deflated file.
struct Font {
    face: ttf_parser::Face<'static>,
    units_per_em: f32,
    ascii: [(u16, u16); 128],
    fallback: (u16, u16),
    deflated: Vec<u8>,
}

fn font() -> Result<&'static Font> {
    static FONT: OnceLock<std::result::Result<Font, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let face = ttf_parser::Face::parse(FONT_DATA, 0).map_err(|e| e.to_string())?;
        let lookup = |c: char| {
            face.glyph_index(c)
                .map(|g| (g.0, face.glyph_hor_advance(g).unwrap_or(0)))
        };
        let fallback = lookup('?').ok_or("the font has no '?'")?;
        let mut ascii = [fallback; 128];
        for (b, slot) in ascii.iter_mut().enumerate().skip(32) {
            if let Some(g) = char::from_u32(b as u32).and_then(lookup) {
                *slot = g;
            }
        }
        Ok(Font {
            units_per_em: f32::from(face.units_per_em()),
            ascii,
            fallback,
            deflated: miniz_oxide::deflate::compress_to_vec_zlib(FONT_DATA, 6),
            face,
        })
    })
    .as_ref()
    .map_err(|e| Error::backend("pdf", format!("embedded font unreadable: {e}")))
}

impl Font {
    /// The character drawn for `c` (`?` for one the font lacks), its glyph id
    /// and advance (font units).
    fn glyph(&self, c: char) -> (char, u16, u16) {
        if c.is_ascii() {
            let (gid, adv) = self.ascii[c as usize];
            return (if (gid, adv) == self.fallback { '?' } else { c }, gid, adv);
        }
        match self.face.glyph_index(c) {
            Some(g) => (c, g.0, self.face.glyph_hor_advance(g).unwrap_or(0)),
            None => ('?', self.fallback.0, self.fallback.1),
        }
    }
}

/// Appends a glyph id as four hex digits.
fn push_hex(out: &mut Vec<u8>, gid: u16) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((gid >> shift) & 0xF)]);
    }
}

/// Appends a number as a content-stream operand (at most two decimals).
fn num(out: &mut Vec<u8>, v: f32) {
    let hundredths = (v * 100.0).round() as i64;
    let mut buf = itoa::Buffer::new();
    if hundredths < 0 {
        out.push(b'-');
    }
    let h = hundredths.unsigned_abs();
    out.extend_from_slice(buf.format(h / 100).as_bytes());
    if !h.is_multiple_of(100) {
        out.push(b'.');
        out.push(b'0' + (h % 100 / 10) as u8);
        if !h.is_multiple_of(10) {
            out.push(b'0' + (h % 10) as u8);
        }
    }
}

/// A human duration: `2 d 3 h`, `1 h 05 min`, `42 min`, `35 s`.
fn human(ms: i128) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{s} s")
    }
}

/// A mean time as the summary shows it, `n/a` when there is none.
fn mean(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "n/a".into(), |d| human(d.as_millis() as i128))
}

/// `2026-01-31 12:00` (UTC) into `buf`.
fn minute(t: Timestamp, buf: &mut [u8; 24]) -> &str {
    let s = super::iso_into(t, buf);
    let end = s.len().min(16);
    buf[10] = b' ';
    std::str::from_utf8(&buf[..end]).unwrap_or_default()
}

/// See the [module documentation](self).
pub struct PdfReport {
    font: &'static Font,
    meta: PdfMeta,
    /// Bytes written and not yet taken.
    out: Vec<u8>,
    /// Bytes written so far, taken or not.
    written: usize,
    /// Byte offset of every object, by id (index 0 unused).
    offsets: Vec<usize>,
    next_id: i32,
    ids: Ids,
    page_ids: Vec<Ref>,
    /// The page being filled: its graphics (backgrounds, form placements)...
    page: Content,
    /// ...and its text operators, drawn over them.
    text: Vec<u8>,
    rows_left: u32,
    y: f32,
    /// Glyphs used (by glyph id), for the font's widths and its
    /// text-extraction map.
    used: Vec<Option<(char, u16)>>,
    summary: IncidentSummary,
    /// Scratch buffer for a cell's glyph ids.
    cell: Vec<u8>,
}

/// Objects whose ids are needed before they are written.
struct Ids {
    catalog: Ref,
    pages: Ref,
    font: Ref,
    cid_font: Ref,
    descriptor: Ref,
    font_file: Ref,
    to_unicode: Ref,
    total: Ref,
    summary: Ref,
    info: Ref,
}

impl std::fmt::Debug for PdfReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfReport")
            .field("pages", &self.page_ids.len())
            .field("rows", &self.summary.total)
            .finish_non_exhaustive()
    }
}

impl PdfReport {
    /// Starts a report: the header and the first page's title block.
    pub fn new(meta: PdfMeta) -> Result<Self> {
        let font = font()?;
        let mut next_id = 1;
        let mut reserve = || {
            let r = Ref::new(next_id);
            next_id += 1;
            r
        };
        let ids = Ids {
            catalog: reserve(),
            pages: reserve(),
            font: reserve(),
            cid_font: reserve(),
            descriptor: reserve(),
            font_file: reserve(),
            to_unicode: reserve(),
            total: reserve(),
            summary: reserve(),
            info: reserve(),
        };
        let mut report = Self {
            font,
            meta,
            out: b"%PDF-1.7\n%\x80\x80\x80\x80\n".to_vec(),
            written: 0,
            offsets: vec![0; next_id as usize],
            next_id,
            ids,
            page_ids: Vec::new(),
            page: Content::new(),
            text: Vec::with_capacity(64 * 1024),
            rows_left: 0,
            y: 0.0,
            used: vec![None; usize::from(font.face.number_of_glyphs())],
            summary: IncidentSummary::default(),
            cell: Vec::with_capacity(256),
        };
        report.written = report.out.len();
        report.start_page();
        Ok(report)
    }

    /// The bytes written since the last call (whole pages so far).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Adds incidents as table rows, writing each page as it fills up.
    pub fn push(&mut self, incidents: &[Incident]) -> Result<()> {
        for i in incidents {
            if self.rows_left == 0 {
                self.finish_page()?;
                self.start_page();
            }
            self.summary.add(i);
            self.row(i);
        }
        Ok(())
    }

    /// Writes the last page, the summary, the page total, the font and the file
    /// trailer; returns the remaining bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        if self.summary.total == 0 {
            self.y -= ROW_H;
            self.text(
                MARGIN + CELL_PAD,
                self.y + 3.5,
                TABLE_SIZE,
                "No incidents match these filters.",
                f32::MAX,
            );
        }
        self.finish_page()?;
        let total = self.page_ids.len().to_string();
        let total_content = {
            let mut c = Vec::new();
            self.text_into(&mut c, 0.0, 2.0, TABLE_SIZE, &total, f32::MAX);
            c
        };
        let summary_content = self.summary_content();
        self.form(
            self.ids.total,
            &total_content,
            Rect::new(0.0, 0.0, 60.0, 10.0),
        );
        self.form(
            self.ids.summary,
            &summary_content,
            Rect::new(0.0, 0.0, PAGE_W - 2.0 * MARGIN, SUMMARY_H),
        );
        self.write_font();

        let mut chunk = Chunk::new();
        let count = i32::try_from(self.page_ids.len()).unwrap_or(i32::MAX);
        chunk
            .pages(self.ids.pages)
            .kids(self.page_ids.iter().copied())
            .count(count);
        self.emit(self.ids.pages, &chunk);
        let mut chunk = Chunk::new();
        chunk
            .indirect(self.ids.catalog)
            .dict()
            .pair(Name(b"Type"), Name(b"Catalog"))
            .pair(Name(b"Pages"), self.ids.pages);
        self.emit(self.ids.catalog, &chunk);
        let mut chunk = Chunk::new();
        chunk
            .indirect(self.ids.info)
            .dict()
            .pair(Name(b"Title"), TextStr("Incident report"))
            .pair(Name(b"Producer"), TextStr("IMAS"));
        self.emit(self.ids.info, &chunk);

        let xref = self.written;
        let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", self.offsets.len());
        for off in &self.offsets[1..] {
            let _ = writeln!(tail, "{off:010} 00000 n ");
        }
        let _ = write!(
            tail,
            "trailer\n<< /Size {} /Root {} 0 R /Info {} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            self.offsets.len(),
            self.ids.catalog.get(),
            self.ids.info.get()
        );
        self.out.extend_from_slice(tail.as_bytes());
        Ok(self.out)
    }

    fn alloc(&mut self) -> Ref {
        let r = Ref::new(self.next_id);
        self.next_id += 1;
        self.offsets.push(0);
        r
    }

    /// Appends one object (a chunk holding only it), recording its offset.
    fn emit(&mut self, id: Ref, chunk: &Chunk) {
        if let Some(slot) = usize::try_from(id.get())
            .ok()
            .and_then(|n| self.offsets.get_mut(n))
        {
            *slot = self.written;
        }
        self.out.extend_from_slice(chunk.as_bytes());
        self.written += chunk.len();
    }

    fn form(&mut self, id: Ref, content: &[u8], bbox: Rect) {
        let data = miniz_oxide::deflate::compress_to_vec_zlib(content, 6);
        let mut chunk = Chunk::new();
        let mut form = chunk.form_xobject(id, &data);
        form.bbox(bbox);
        form.filter(Filter::FlateDecode);
        form.resources().fonts().pair(Name(b"F1"), self.ids.font);
        form.finish();
        self.emit(id, &chunk);
    }

    fn start_page(&mut self) {
        self.page = Content::new();
        let number = self.page_ids.len() + 1;
        let mut top = PAGE_H - MARGIN;
        if number == 1 {
            self.first_page_block();
            top -= FIRST_PAGE_BLOCK;
        }
        // Footer: generation time left, "page X of Y" right (Y drawn later).
        let mut buf = [0u8; 24];
        let generated = format!(
            "Incident report, generated {} UTC",
            minute(self.meta.generated_at, &mut buf)
        );
        self.text(MARGIN, MARGIN - 14.0, TABLE_SIZE, &generated, f32::MAX);
        let label = format!("page {number} of ");
        let x = PAGE_W - MARGIN - 60.0;
        let w = self.text(x, MARGIN - 14.0, TABLE_SIZE, &label, f32::MAX);
        self.page
            .save_state()
            .transform([1.0, 0.0, 0.0, 1.0, x + w, MARGIN - 16.0])
            .x_object(Name(b"T"))
            .restore_state();
        // Header row.
        self.y = top - ROW_H;
        self.page
            .set_fill_gray(0.85)
            .rect(MARGIN, self.y, PAGE_W - 2.0 * MARGIN, ROW_H)
            .fill_nonzero()
            .set_fill_gray(0.0);
        let mut x = MARGIN;
        for (heading, width) in COLUMNS {
            self.text(
                x + CELL_PAD,
                self.y + 3.5,
                TABLE_SIZE,
                heading,
                width - 2.0 * CELL_PAD,
            );
            x += width;
        }
        self.rows_left = rows_below(top);
    }

    fn first_page_block(&mut self) {
        let mut y = PAGE_H - MARGIN - 16.0;
        self.text(MARGIN, y, 16.0, "Incident report", f32::MAX);
        y -= 16.0;
        let filters = if self.meta.filters.is_empty() {
            "Filters: none".to_string()
        } else {
            let parts: Vec<String> = self
                .meta
                .filters
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            format!("Filters: {}", parts.join("; "))
        };
        self.text(MARGIN, y, 9.0, &filters, PAGE_W - 2.0 * MARGIN);
        y -= 12.0;
        let generated = format!(
            "Generated: {} UTC",
            self.meta.generated_at.format("%Y-%m-%d %H:%M:%S")
        );
        self.text(MARGIN, y, 9.0, &generated, f32::MAX);
        y -= 8.0 + SUMMARY_H;
        self.page
            .save_state()
            .transform([1.0, 0.0, 0.0, 1.0, MARGIN, y])
            .x_object(Name(b"S"))
            .restore_state();
    }

    fn summary_content(&mut self) -> Vec<u8> {
        let s = &self.summary;
        let statuses: Vec<String> = s.statuses().map(|(st, n)| format!("{st} {n}")).collect();
        let priorities: Vec<String> = s.priorities().map(|(p, n)| format!("{p} {n}")).collect();
        let lines = [
            format!("Incidents: {}    SLA breached: {}", s.total, s.breached),
            format!("By status: {}", statuses.join(" · ")),
            format!("By priority: {}", priorities.join(" · ")),
            format!(
                "Mean time to acknowledge: {} ({} acknowledged)    Mean time to resolve: {} ({} resolved)",
                mean(s.mean_time_to_acknowledge()),
                s.acknowledged,
                mean(s.mean_time_to_resolve()),
                s.resolved
            ),
        ];
        let mut c = Vec::new();
        let mut y = SUMMARY_H - 11.0;
        for line in lines {
            self.text_into(&mut c, 0.0, y, 9.0, &line, PAGE_W - 2.0 * MARGIN);
            y -= 13.0;
        }
        c
    }

    fn row(&mut self, i: &Incident) {
        self.y -= ROW_H;
        self.rows_left -= 1;
        if self.rows_left % 2 == 1 {
            self.page
                .set_fill_gray(0.95)
                .rect(MARGIN, self.y, PAGE_W - 2.0 * MARGIN, ROW_H)
                .fill_nonzero()
                .set_fill_gray(0.0);
        }
        let (mut id, mut assignee) = ([0u8; 36], [0u8; 36]);
        let (mut created, mut deadline) = ([0u8; 24], [0u8; 24]);
        let mut level = itoa::Buffer::new();
        let cells: [&str; 9] = [
            i.id.0.hyphenated().encode_lower(&mut id),
            &i.title,
            i.priority.as_str(),
            i.status.as_str(),
            match i.assigned_to {
                Some(a) => a.0.hyphenated().encode_lower(&mut assignee),
                None => "—",
            },
            minute(i.created_at, &mut created),
            minute(i.sla_deadline, &mut deadline),
            if i.sla_breached { "yes" } else { "no" },
            level.format(i.escalation_level),
        ];
        // One text object per row: the cursor moves from column to column.
        let mut out = std::mem::take(&mut self.text);
        out.extend_from_slice(b"BT /F1 ");
        num(&mut out, TABLE_SIZE);
        out.extend_from_slice(b" Tf 1 0 0 1 ");
        num(&mut out, MARGIN + CELL_PAD);
        out.push(b' ');
        num(&mut out, self.y + 3.5);
        out.extend_from_slice(b" Tm");
        let mut moved = 0.0;
        let mut x = 0.0;
        for (text, (_, width)) in cells.into_iter().zip(COLUMNS) {
            self.encode(text, TABLE_SIZE, width - 2.0 * CELL_PAD);
            if !self.cell.is_empty() {
                if x > moved {
                    out.push(b' ');
                    num(&mut out, x - moved);
                    out.extend_from_slice(b" 0 Td");
                    moved = x;
                }
                out.extend_from_slice(b" <");
                out.extend_from_slice(&self.cell);
                out.extend_from_slice(b"> Tj");
            }
            x += width;
        }
        out.extend_from_slice(b" ET\n");
        self.text = out;
    }

    /// Draws `text` on the current page; see [`PdfReport::text_into`].
    fn text(&mut self, x: f32, y: f32, size: f32, text: &str, max_w: f32) -> f32 {
        let mut out = std::mem::take(&mut self.text);
        let w = self.text_into(&mut out, x, y, size, text, max_w);
        self.text = out;
        w
    }

    /// Appends the operators drawing one line of `text` at (`x`, `y`) to `out`,
    /// cut with an ellipsis to fit `max_w` points; returns the width drawn.
    /// Control characters (a newline in a title) are drawn as spaces.
    fn text_into(
        &mut self,
        out: &mut Vec<u8>,
        x: f32,
        y: f32,
        size: f32,
        text: &str,
        max_w: f32,
    ) -> f32 {
        let width = self.encode(text, size, max_w);
        if !self.cell.is_empty() {
            out.extend_from_slice(b"BT /F1 ");
            num(out, size);
            out.extend_from_slice(b" Tf 1 0 0 1 ");
            num(out, x);
            out.push(b' ');
            num(out, y);
            out.extend_from_slice(b" Tm <");
            out.extend_from_slice(&self.cell);
            out.extend_from_slice(b"> Tj ET\n");
        }
        width
    }

    /// Encodes `text` as glyph ids (hex, four digits each) into `self.cell`, cut
    /// with an ellipsis to fit `max_w` points at `size`; returns the width in
    /// points.
    fn encode(&mut self, text: &str, size: f32, max_w: f32) -> f32 {
        let scale = size / self.font.units_per_em;
        let limit = max_w / scale;
        let (_, e_gid, e_adv) = self.font.glyph('…');
        let ellipsis = (e_gid, e_adv);
        self.cell.clear();
        let mut width = 0.0_f32;
        // Width up to the last glyph that still leaves room for an ellipsis.
        let mut fits_with_ellipsis = (0, 0.0_f32);
        let mut cut = false;
        for ch in text.chars() {
            let ch = if ch.is_control() { ' ' } else { ch };
            let (ch, gid, adv) = self.font.glyph(ch);
            let adv = f32::from(adv);
            if width + adv > limit {
                cut = true;
                break;
            }
            width += adv;
            push_hex(&mut self.cell, gid);
            self.mark(gid, ch, adv as u16);
            if width + f32::from(ellipsis.1) <= limit {
                fits_with_ellipsis = (self.cell.len(), width);
            }
        }
        if cut {
            self.cell.truncate(fits_with_ellipsis.0);
            width = fits_with_ellipsis.1 + f32::from(ellipsis.1);
            push_hex(&mut self.cell, ellipsis.0);
            self.mark(ellipsis.0, '…', ellipsis.1);
        }
        width * scale
    }

    fn mark(&mut self, gid: u16, ch: char, advance: u16) {
        if let Some(slot @ None) = self.used.get_mut(usize::from(gid)) {
            *slot = Some((ch, advance));
        }
    }

    /// The glyphs used, by id.
    fn used(&self) -> impl Iterator<Item = (u16, char, u16)> + '_ {
        self.used
            .iter()
            .enumerate()
            .filter_map(|(gid, g)| g.map(|(ch, adv)| (gid as u16, ch, adv)))
    }

    fn finish_page(&mut self) -> Result<()> {
        let mut content = std::mem::replace(&mut self.page, Content::new())
            .finish()
            .into_vec();
        content.push(b'\n');
        content.append(&mut self.text);
        let data = miniz_oxide::deflate::compress_to_vec_zlib(&content, 1);
        let (page_id, content_id) = (self.alloc(), self.alloc());
        let mut chunk = Chunk::new();
        chunk.stream(content_id, &data).filter(Filter::FlateDecode);
        self.emit(content_id, &chunk);
        let mut chunk = Chunk::new();
        let mut page = chunk.page(page_id);
        page.parent(self.ids.pages)
            .media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .contents(content_id);
        let mut resources = page.resources();
        resources.fonts().pair(Name(b"F1"), self.ids.font);
        let mut xobjects = resources.x_objects();
        xobjects.pair(Name(b"T"), self.ids.total);
        if self.page_ids.is_empty() {
            xobjects.pair(Name(b"S"), self.ids.summary);
        }
        xobjects.finish();
        resources.finish();
        page.finish();
        self.emit(page_id, &chunk);
        self.page_ids.push(page_id);
        Ok(())
    }

    /// The Type 0 font (Identity-H, glyph ids as CIDs) with the whole TrueType
    /// file embedded, widths and a text-extraction map for the glyphs used.
    fn write_font(&mut self) {
        let ids = &self.ids;
        let scale = 1000.0 / self.font.units_per_em;
        let name = Name(b"DejaVuSansCondensed");
        let system = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };
        let mut chunk = Chunk::new();
        chunk
            .type0_font(ids.font)
            .base_font(name)
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(ids.cid_font)
            .to_unicode(ids.to_unicode);
        let font = (ids.font, chunk);
        let mut chunk = Chunk::new();
        {
            let mut cid = chunk.cid_font(ids.cid_font);
            cid.subtype(CidFontType::Type2)
                .base_font(name)
                .system_info(system)
                .font_descriptor(ids.descriptor)
                .default_width(0.0)
                .cid_to_gid_map_predefined(Name(b"Identity"));
            let mut widths = cid.widths();
            for (gid, _, adv) in self.used() {
                widths.consecutive(gid, [f32::from(adv) * scale]);
            }
        }
        let cid = (ids.cid_font, chunk);
        let face = &self.font.face;
        let bbox = face.global_bounding_box();
        let mut chunk = Chunk::new();
        chunk
            .font_descriptor(ids.descriptor)
            .name(name)
            .flags(FontFlags::NON_SYMBOLIC)
            .bbox(Rect::new(
                f32::from(bbox.x_min) * scale,
                f32::from(bbox.y_min) * scale,
                f32::from(bbox.x_max) * scale,
                f32::from(bbox.y_max) * scale,
            ))
            .italic_angle(0.0)
            .ascent(f32::from(face.ascender()) * scale)
            .descent(f32::from(face.descender()) * scale)
            .cap_height(f32::from(face.capital_height().unwrap_or(face.ascender())) * scale)
            .stem_v(80.0)
            .font_file2(ids.font_file);
        let descriptor = (ids.descriptor, chunk);
        let mut chunk = Chunk::new();
        chunk
            .stream(ids.font_file, &self.font.deflated)
            .filter(Filter::FlateDecode)
            .pair(
                Name(b"Length1"),
                i32::try_from(FONT_DATA.len()).unwrap_or(i32::MAX),
            );
        let file = (ids.font_file, chunk);
        let mut cmap = UnicodeCmap::new(Name(b"Custom"), system);
        for (gid, ch, _) in self.used() {
            cmap.pair(gid, ch);
        }
        let cmap_data = cmap.finish();
        let mut chunk = Chunk::new();
        chunk.cmap(ids.to_unicode, cmap_data.as_slice());
        let to_unicode = (ids.to_unicode, chunk);
        for (id, chunk) in [font, cid, descriptor, file, to_unicode] {
            self.emit(id, &chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_are_written_with_at_most_two_decimals() {
        let mut out = Vec::new();
        for v in [0.0, 7.0, 523.5, -16.0, 3.25, 0.004, 12.999] {
            num(&mut out, v);
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "0 7 523.5 -16 3.25 0 13 "
        );
        let mut hex = Vec::new();
        push_hex(&mut hex, 0x0A1F);
        assert_eq!(hex, b"0A1F");
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human(35_000), "35 s");
        assert_eq!(human(42 * 60_000), "42 min");
        assert_eq!(human(65 * 60_000), "1 h 05 min");
        assert_eq!(human((2 * 24 + 3) * 3_600_000), "2 d 3 h");
        assert_eq!(mean(None), "n/a");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis_within_its_width() {
        let mut r = PdfReport::new(PdfMeta::default()).expect("report");
        let mut c = Vec::new();
        let w = r.text_into(&mut c, 0.0, 0.0, 7.0, &"wide ".repeat(200), 100.0);
        assert!(w <= 100.0 && w > 90.0, "{w}");
        assert_eq!(r.cell.len() % 4, 0, "four hex digits a glyph");
        let hex = std::str::from_utf8(&r.cell[r.cell.len() - 4..]).expect("hex");
        let last = u16::from_str_radix(hex, 16).expect("glyph id");
        assert_eq!(r.used[usize::from(last)].map(|g| g.0), Some('…'));
        let short = r.text_into(&mut c, 0.0, 0.0, 7.0, "short", 100.0);
        assert!(short < 30.0);
        assert_eq!(r.cell.len(), 20, "five glyphs, no ellipsis");
    }
}
