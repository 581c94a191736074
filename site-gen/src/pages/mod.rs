//! The pages, one module per page kind. Each builds a serializable page
//! model (plain data: figures already formatted, names, days, links) and
//! renders it with its template, which holds every word; [`common`] and
//! [`charts`] hold the pieces several kinds share.
//!
//! Adding a page kind is adding a module here (a model, a function that
//! builds it, and `pages` rendering it), its template in `templates/`
//! (listed in [`crate::templates::TEMPLATES`]), and an entry in the
//! audience's list in [`crate::site`].

pub(crate) mod area;
pub(crate) mod bulletin;
pub(crate) mod charts;
pub(crate) mod common;
pub(crate) mod desk;
pub(crate) mod downloads;
#[cfg(test)]
pub(crate) mod fixture;
pub(crate) mod home;
pub(crate) mod methodology;
pub(crate) mod quality;
pub(crate) mod sitemap;

use chrono::NaiveDate;
use gridstat_schemas::metrics::{Metric, PUBLIC_FIGURES};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Area, Rollups};
use crate::site::{Audience, OutputFile, SiteOptions};
use crate::suppress::{suppress, Cell, Published};
use crate::templates::{ChartTexts, Templates};
use common::{depth_root, Day, Figure, Figures};

/// What every page is built from: the rollups, the cells the audience may
/// see, the options and the templates.
#[derive(Debug)]
pub(crate) struct Site<'a> {
    /// The rollups.
    pub(crate) rollups: &'a Rollups,
    /// The cells the audience may see: suppressed on the public site.
    pub(crate) published: Published,
    /// The build's options.
    pub(crate) opts: &'a SiteOptions,
    templates: Templates,
    city: &'a Area,
}

/// What every page's template gets besides its model.
#[derive(Debug, Serialize)]
struct PageFrame<'a> {
    root: String,
    audience: &'static str,
    threshold: u32,
    as_of: Day,
    base_url: &'a str,
}

impl<'a> Site<'a> {
    /// Check there is something to publish, apply disclosure control for
    /// the audience, and load the templates.
    pub(crate) fn new(rollups: &'a Rollups, opts: &'a SiteOptions) -> Result<Self> {
        let city = match rollups.city() {
            Some(city) if !rollups.days.is_empty() => city,
            _ => return Err(Error::NoRollups),
        };
        let published = match opts.audience {
            Audience::Public => suppress(rollups, f64::from(opts.threshold)),
            Audience::Internal => {
                Published::unsuppressed(rollups.areas.values(), rollups.days.len())
            }
        };
        Ok(Self {
            rollups,
            published,
            opts,
            templates: Templates::new(&opts.template_overrides)?,
            city,
        })
    }

    /// The city (the home page's area).
    pub(crate) fn city(&self) -> &'a Area {
        self.city
    }

    /// The days covered, ascending (never empty).
    pub(crate) fn days(&self) -> &'a [NaiveDate] {
        &self.rollups.days
    }

    /// Index of the last day: the day pages report.
    pub(crate) fn last(&self) -> usize {
        self.rollups.days.len() - 1
    }

    /// Whether this is the public site.
    pub(crate) fn is_public(&self) -> bool {
        self.opts.audience == Audience::Public
    }

    /// One published figure of `area` on day index `day`.
    pub(crate) fn figure(&self, area: &Area, metric: Metric, day: usize) -> Figure {
        Figure::new(
            metric,
            self.published.cell(area, metric, day),
            self.opts.threshold,
        )
    }

    /// Every public figure of `area` on day index `day`, by metric.
    pub(crate) fn figures(&self, area: &Area, day: usize) -> Figures {
        PUBLIC_FIGURES
            .iter()
            .map(|&m| (m, self.figure(area, m, day)))
            .collect()
    }

    /// What day index `day` added to each cumulative count of `area` that
    /// never decreases; withheld unless both days' totals are published.
    pub(crate) fn increments(&self, area: &Area, day: usize) -> Figures {
        PUBLIC_FIGURES
            .iter()
            .filter(|m| m.is_monotone())
            .map(|&m| {
                let cell = self
                    .published
                    .increment(area, m, day)
                    .map_or(Cell::Withheld, Cell::Shown);
                (m, Figure::new(m, cell, self.opts.threshold))
            })
            .collect()
    }

    /// The headline figures of `area` on the last day, in catalogue order.
    pub(crate) fn cards(&self, area: &Area) -> Vec<Figure> {
        PUBLIC_FIGURES
            .iter()
            .map(|&m| self.figure(area, m, self.last()))
            .collect()
    }

    /// Render `template` with `model` as the file `path`.
    pub(crate) fn render(
        &self,
        template: &str,
        path: &str,
        model: &impl Serialize,
    ) -> Result<OutputFile> {
        let frame = PageFrame {
            root: depth_root(path),
            audience: self.opts.audience.name(),
            threshold: self.opts.threshold,
            as_of: Day(self.days()[self.last()]),
            base_url: &self.opts.base_url,
        };
        self.templates.render(template, path, &frame, model)
    }

    /// The chart texts, for drawing charts.
    pub(crate) fn chart_texts(&self) -> Result<ChartTexts<'_>> {
        self.templates.chart_texts()
    }
}
