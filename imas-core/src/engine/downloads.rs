//! Report downloads: [`Engine::download_report`] checks the caller may export
//! reports, validates the format and streams the report's bytes (CSV or PDF,
//! behind the `csv` and `pdf` features), so that an HTTP layer only maps the
//! [`Download`] or the [`DownloadError`] to an answer.

use futures::stream::BoxStream;

use super::Engine;
use crate::error::{Error, Result};
use crate::model::IncidentFilter;
use crate::rbac::{self, Permission};

/// Incidents exported per page while streaming a report.
#[cfg(any(feature = "csv", feature = "pdf"))]
const REPORT_BATCH: u32 = 500;

/// What a client asks of [`Engine::download_report`].
#[derive(Debug)]
pub struct ReportRequest<'a> {
    /// `csv` or `pdf` (any case), as the client wrote it; anything else, or
    /// none, is [`DownloadError::BadFormat`].
    pub format: Option<&'a str>,
    /// The incidents to report, or the error met reading the filter from the
    /// request: it is returned after the permission check, like any invalid input.
    pub filter: Result<IncidentFilter>,
    /// The filters as the client wrote them, `(name, value)`, printed on a PDF.
    pub described: Vec<(String, String)>,
}

/// A report as a download: its type, its file name and its bytes, produced
/// as the incidents are read (the first page is read before the download is
/// returned, so that a store failing at once is an error, not a cut download).
pub struct Download {
    /// The media type (`text/csv; charset=utf-8`, `application/pdf`).
    pub content_type: &'static str,
    /// The file name offered to the client (`incidents.csv`, `incidents.pdf`).
    pub filename: &'static str,
    /// The bytes, in order; an error ends the download short. Fused: polled
    /// again after its end, it stays ended.
    pub body: BoxStream<'static, Result<Vec<u8>>>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("content_type", &self.content_type)
            .field("filename", &self.filename)
            .finish_non_exhaustive()
    }
}

/// Why [`Engine::download_report`] produced no download.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The format is missing or unknown (the original's answer, word for word).
    #[error("Invalid format. Use 'csv' or 'pdf'.")]
    BadFormat,
    /// The format is known but this build leaves it out.
    #[error("{format} reports are not compiled in (feature `{feature}`)")]
    NotCompiledIn {
        /// `CSV` or `PDF`.
        format: &'static str,
        /// The feature of `imas-core` that adds it.
        feature: &'static str,
    },
    /// Any other error: forbidden, invalid filter, store failure...
    #[error(transparent)]
    Engine(#[from] Error),
}

impl Engine {
    /// The incident report `request` asks for, as a download: checks the caller
    /// may export reports, then the filter, then the format.
    pub async fn download_report(
        &self,
        who: &super::Principal,
        request: ReportRequest<'_>,
    ) -> Result<Download, DownloadError> {
        rbac::require(who.role, Permission::ExportReports)?;
        let filter = request.filter?;
        let format = request.format.unwrap_or_default();
        if format.eq_ignore_ascii_case("csv") {
            self.csv_download(who, filter).await
        } else if format.eq_ignore_ascii_case("pdf") {
            self.pdf_download(who, filter, request.described).await
        } else {
            Err(DownloadError::BadFormat)
        }
    }

    /// The report's pages, with the first one fetched before the download is
    /// returned.
    #[cfg(any(feature = "csv", feature = "pdf"))]
    async fn report_pages(
        &self,
        who: &super::Principal,
        filter: IncidentFilter,
    ) -> Result<
        impl futures::stream::FusedStream<Item = Result<Vec<crate::model::Incident>>>
        + Unpin
        + Send
        + 'static,
    > {
        use futures::StreamExt;
        let mut pages = Box::pin(self.export_incidents(who, filter, REPORT_BATCH)?.peekable());
        if let Some(Err(_)) = pages.as_mut().peek().await
            && let Some(Err(e)) = pages.next().await
        {
            return Err(e);
        }
        Ok(pages)
    }

    #[cfg(feature = "csv")]
    async fn csv_download(
        &self,
        who: &super::Principal,
        filter: IncidentFilter,
    ) -> Result<Download, DownloadError> {
        use futures::StreamExt;
        let header = crate::report::csv_header()?;
        let pages = self.report_pages(who, filter).await?;
        let rows = pages.map(|page| page.and_then(|items| crate::report::csv_rows(&items)));
        let body = futures::stream::once(async move { Ok(header) })
            .chain(rows)
            .fuse();
        Ok(Download {
            content_type: "text/csv; charset=utf-8",
            filename: "incidents.csv",
            body: body.boxed(),
        })
    }

    #[cfg(not(feature = "csv"))]
    async fn csv_download(
        &self,
        _: &super::Principal,
        _: IncidentFilter,
    ) -> Result<Download, DownloadError> {
        Err(DownloadError::NotCompiledIn {
            format: "CSV",
            feature: "csv",
        })
    }

    #[cfg(feature = "pdf")]
    async fn pdf_download(
        &self,
        who: &super::Principal,
        filter: IncidentFilter,
        filters: Vec<(String, String)>,
    ) -> Result<Download, DownloadError> {
        use crate::report::{PdfMeta, PdfReport};
        use futures::StreamExt;
        let report = PdfReport::new(PdfMeta {
            filters,
            generated_at: self.now(),
        })?;
        let pages = self.report_pages(who, filter).await?;
        // Each page of incidents becomes the PDF pages it fills; the summary,
        // the page total and the font follow the last one.
        let body = futures::stream::unfold(Some((pages, report)), |state| async move {
            let (mut pages, mut report) = state?;
            match pages.next().await {
                Some(Ok(items)) => {
                    let bytes = report.push(&items).map(|()| report.take());
                    Some((bytes, Some((pages, report))))
                }
                Some(Err(e)) => Some((Err(e), None)),
                None => Some((report.finish(), None)),
            }
        })
        .fuse();
        Ok(Download {
            content_type: "application/pdf",
            filename: "incidents.pdf",
            body: body.boxed(),
        })
    }

    #[cfg(not(feature = "pdf"))]
    async fn pdf_download(
        &self,
        _: &super::Principal,
        _: IncidentFilter,
        _: Vec<(String, String)>,
    ) -> Result<Download, DownloadError> {
        Err(DownloadError::NotCompiledIn {
            format: "PDF",
            feature: "pdf",
        })
    }
}
