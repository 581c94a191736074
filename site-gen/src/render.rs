//! Page models and rendering: pure, from rollups to files. The same rollups
//! and options always give the same bytes (no build timestamps).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use minijinja::value::Serde;
use minijinja::{context, Environment};
use serde::Serialize;

use crate::chart::{line_chart, Series};
use crate::error::{Error, Result};
use gridstat_schemas::metrics::{Kind, Metric, PUBLIC_FIGURES};

use crate::model::{level_dir, Area, Level, Rollups};
use crate::suppress::{suppress, Cell, Published};

/// Who a site is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The public site: city, county and town figures, suppressed.
    Public,
    /// Leadership's dashboard: everything, grid pages, data quality.
    Internal,
}

/// Options of a site build.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// Public or internal.
    pub audience: Audience,
    /// Counts below this are withheld on the public site.
    pub threshold: u32,
    /// Absolute URL the public site is served at (feed and sitemap), ending in `/`.
    pub base_url: String,
    /// Templates overriding the embedded ones, by file name.
    pub template_overrides: BTreeMap<String, String>,
}

impl Default for SiteOptions {
    fn default() -> Self {
        Self {
            audience: Audience::Public,
            threshold: 5,
            base_url: "http://127.0.0.1:8000/".into(),
            template_overrides: BTreeMap::new(),
        }
    }
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Path relative to the output directory.
    pub path: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// The embedded templates, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("area.html", include_str!("../templates/area.html")),
    ("bulletin.html", include_str!("../templates/bulletin.html")),
    ("archive.html", include_str!("../templates/archive.html")),
    ("page.html", include_str!("../templates/page.html")),
    ("feed.xml", include_str!("../templates/feed.xml")),
    ("sitemap.xml", include_str!("../templates/sitemap.xml")),
];

/// The embedded stylesheet.
pub const STYLE_CSS: &str = include_str!("../templates/style.css");

const SITE_NAME: &str = "江门市“三询问一完善”网格走访统计";

#[derive(Debug, Serialize, Clone)]
struct Link {
    text: String,
    href: String,
}

#[derive(Debug, Serialize, Clone, Default)]
struct TCell {
    text: String,
    href: Option<String>,
}

#[derive(Debug, Serialize, Clone, Default)]
struct Table {
    caption: String,
    headers: Vec<String>,
    rows: Vec<Vec<TCell>>,
}

#[derive(Debug, Serialize)]
struct Chart {
    title: String,
    svg: String,
    table: Table,
}

#[derive(Debug, Serialize)]
struct Card {
    label: String,
    value: String,
}

fn text(s: impl Into<String>) -> TCell {
    TCell {
        text: s.into(),
        href: None,
    }
}

fn link(s: impl Into<String>, href: String) -> TCell {
    TCell {
        text: s.into(),
        href: Some(href),
    }
}

struct Ctx<'a> {
    r: &'a Rollups,
    p: Published,
    opts: &'a SiteOptions,
    env: Environment<'a>,
    last: usize,
    out: Vec<OutputFile>,
}

/// Build a whole site.
pub fn build(r: &Rollups, opts: &SiteOptions) -> Result<Vec<OutputFile>> {
    if r.days.is_empty() || r.city().is_none() {
        return Err(Error::NoRollups);
    }
    let p = match opts.audience {
        Audience::Public => suppress(r, f64::from(opts.threshold)),
        Audience::Internal => Published::unsuppressed(r.areas.values(), r.days.len()),
    };
    let mut env = Environment::new();
    for (name, body) in TEMPLATES {
        let body = opts
            .template_overrides
            .get(*name)
            .cloned()
            .unwrap_or_else(|| (*body).to_string());
        env.add_template_owned(name.to_string(), body)
            .map_err(|source| Error::Template {
                name: name.to_string(),
                source,
            })?;
    }
    let mut cx = Ctx {
        r,
        p,
        opts,
        env,
        last: r.days.len() - 1,
        out: Vec::new(),
    };
    cx.out.push(OutputFile {
        path: "style.css".into(),
        bytes: STYLE_CSS.as_bytes().to_vec(),
    });
    cx.home()?;
    let levels: &[Level] = match opts.audience {
        Audience::Public => &[Level::County, Level::Town],
        Audience::Internal => &[Level::County, Level::Town, Level::Grid],
    };
    let areas: Vec<&Area> = levels.iter().flat_map(|&l| r.level(l)).collect();
    let pages = parallel_map(&areas, |a| cx.area_page(a))?;
    cx.out.extend(pages);
    match opts.audience {
        Audience::Public => {
            cx.bulletins()?;
            cx.methodology()?;
            cx.downloads()?;
            cx.sitemap()?;
        }
        Audience::Internal => cx.quality()?,
    }
    cx.out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(cx.out)
}

/// `f` over `items` on every core, results in input order; the first error wins.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<R>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Result<Vec<R>>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

fn date_label(d: NaiveDate) -> String {
    format!("{}年{}月{}日", d.year(), d.month(), d.day())
}

fn depth_root(path: &str) -> String {
    "../".repeat(path.matches('/').count())
}

fn area_path(a: &Area) -> String {
    match a.level {
        Level::City => "index.html".into(),
        _ => format!("{}/{}/index.html", level_dir(a.level), a.code),
    }
}

fn level_label(l: Level) -> &'static str {
    l.label()
}

impl Ctx<'_> {
    fn render(&mut self, template: &str, path: &str, extra: minijinja::Value) -> Result<()> {
        let page = self.page(template, path, extra)?;
        self.out.push(page);
        Ok(())
    }

    /// One rendered page; pure, so pages can be rendered on several threads.
    fn page(&self, template: &str, path: &str, extra: minijinja::Value) -> Result<OutputFile> {
        let tmpl = self
            .env
            .get_template(template)
            .map_err(|source| Error::Template {
                name: template.into(),
                source,
            })?;
        let audience = match self.opts.audience {
            Audience::Public => "public",
            Audience::Internal => "internal",
        };
        let ctx = context! {
            root => depth_root(path),
            site_name => SITE_NAME,
            audience => audience,
            threshold => self.opts.threshold,
            as_of => date_label(self.r.days[self.last]),
            ..extra
        };
        let html = tmpl.render(ctx).map_err(|source| Error::Template {
            name: template.into(),
            source,
        })?;
        Ok(OutputFile {
            path: path.into(),
            bytes: html.into_bytes(),
        })
    }

    fn show(&self, m: Metric, c: Cell) -> String {
        match c {
            Cell::Shown(v) => match m.kind() {
                Kind::Ratio { .. } => format!("{:.1}%", v * 100.0),
                _ => format!("{v:.0}"),
            },
            Cell::Small => format!("<{}", self.opts.threshold),
            Cell::Withheld => "×".into(),
        }
    }

    fn value(&self, a: &Area, m: Metric, day: usize) -> String {
        self.show(m, self.p.cell(a, m, day))
    }

    fn cards(&self, a: &Area) -> Vec<Card> {
        PUBLIC_FIGURES
            .iter()
            .map(|&m| Card {
                label: m.label().into(),
                value: format!(
                    "{}{}",
                    self.show(m, self.p.cell(a, m, self.last)),
                    if matches!(m.kind(), Kind::Ratio { .. }) {
                        ""
                    } else {
                        m.spec().unit
                    }
                ),
            })
            .collect()
    }

    fn series_table(&self, caption: &str, a: &Area, keys: &[Metric]) -> Table {
        let mut headers = vec!["日期".to_string()];
        headers.extend(keys.iter().map(|k| k.label().to_string()));
        let rows = (0..self.r.days.len())
            .map(|d| {
                let mut row = vec![text(self.r.days[d].format("%Y-%m-%d").to_string())];
                row.extend(keys.iter().map(|&k| text(self.value(a, k, d))));
                row
            })
            .collect();
        Table {
            caption: caption.into(),
            headers,
            rows,
        }
    }

    fn area_charts(&self, a: &Area) -> Result<Vec<Chart>> {
        let specs: [(&str, &[Metric], bool); 3] = [
            ("住户走访覆盖率(累计)", &[Metric::Coverage], true),
            (
                "安全隐患:排查与整改(累计)",
                &[
                    Metric::HazardsFound,
                    Metric::HazardsFixed,
                    Metric::HazardsOpen,
                ],
                false,
            ),
            (
                "困难诉求:收集、解决与未解决",
                &[
                    Metric::HardshipsRaised,
                    Metric::HardshipsResolved,
                    Metric::HardshipsOpen,
                ],
                false,
            ),
        ];
        specs
            .iter()
            .map(|(title, keys, percent)| {
                let series: Vec<Series> = keys
                    .iter()
                    .map(|&k| Series {
                        label: k.label().into(),
                        values: (0..self.r.days.len())
                            .map(|d| self.p.get(a, k, d))
                            .collect(),
                    })
                    .collect();
                let full_title = format!("{}{}", a.name, title);
                let desc = format!(
                    "{}至{}每日数值,数据见图下表格。",
                    self.r.days[0], self.r.days[self.last]
                );
                Ok(Chart {
                    svg: line_chart(&full_title, &desc, &self.r.days, &series, *percent)?,
                    table: self.series_table(&full_title, a, keys),
                    title: full_title,
                })
            })
            .collect()
    }

    fn children_table(&self, a: &Area, from: &str) -> Table {
        let keys = [
            Metric::HouseholdsVisited,
            Metric::Coverage,
            Metric::HazardsFound,
            Metric::HazardsFixed,
            Metric::HardshipsRaised,
            Metric::HardshipsResolved,
            Metric::HardshipsOpen,
        ];
        let mut headers = vec!["名称".to_string()];
        headers.extend(keys.iter().map(|k| k.label().to_string()));
        let root = depth_root(from);
        let rows = self
            .r
            .children(a)
            .filter(|c| self.opts.audience == Audience::Internal || c.level != Level::Grid)
            .map(|c| {
                let mut row = vec![link(c.name.clone(), format!("{root}{}", area_path(c)))];
                row.extend(keys.iter().map(|&k| text(self.value(c, k, self.last))));
                row
            })
            .collect();
        Table {
            caption: format!(
                "{}下辖各{}(截至{})",
                a.name,
                level_label(child_level(a.level)),
                date_label(self.r.days[self.last])
            ),
            headers,
            rows,
        }
    }

    fn home(&mut self) -> Result<()> {
        let city = self.r.city().expect("checked in build");
        let counties: Vec<&Area> = self.r.children(city).collect();
        let series: Vec<Series> = counties
            .iter()
            .map(|c| Series {
                label: c.name.clone(),
                values: (0..self.r.days.len())
                    .map(|d| self.p.get(c, Metric::Coverage, d))
                    .collect(),
            })
            .collect();
        let title = "各县(市、区)住户走访覆盖率(累计)";
        let mut table = Table {
            caption: title.into(),
            headers: vec!["日期".into()],
            rows: Vec::new(),
        };
        table
            .headers
            .extend(counties.iter().map(|c| c.name.clone()));
        for d in 0..self.r.days.len() {
            let mut row = vec![text(self.r.days[d].format("%Y-%m-%d").to_string())];
            row.extend(
                counties
                    .iter()
                    .map(|c| text(self.value(c, Metric::Coverage, d))),
            );
            table.rows.push(row);
        }
        let desc = format!(
            "{}个县(市、区)每日累计覆盖率,数据见图下表格。",
            counties.len()
        );
        let mut charts = vec![Chart {
            svg: line_chart(title, &desc, &self.r.days, &series, true)?,
            table,
            title: title.into(),
        }];
        charts.extend(self.area_charts(city)?);
        let bulletin = (self.opts.audience == Audience::Public).then(|| {
            let day = self.r.days[self.last];
            context! { href => format!("bulletins/{day}/index.html"), date_label => date_label(day), paragraphs => self.bulletin_text(self.last) }
        });
        let (lagging, overdue) = match self.opts.audience {
            Audience::Internal => (Some(self.lagging_grids()), Some(self.overdue_cases())),
            Audience::Public => (None, None),
        };
        let extra = context! {
            title => format!("{}走访统计", city.name),
            cards => Serde(self.cards(city)),
            charts => Serde(charts),
            children => Serde(self.children_table(city, "index.html")),
            bulletin => bulletin,
            lagging => Serde(lagging),
            overdue => Serde(overdue),
        };
        self.render("home.html", "index.html", extra)
    }

    fn lagging_grids(&self) -> Table {
        let mut grids: Vec<(&Area, f64)> = self
            .r
            .level(Level::Grid)
            .map(|g| (g, self.p.get(g, Metric::Coverage, self.last).unwrap_or(0.0)))
            .collect();
        grids.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.code.cmp(&b.0.code)));
        let rows = grids
            .iter()
            .take(20)
            .map(|(g, _)| {
                let town = g
                    .parent
                    .as_ref()
                    .and_then(|t| self.r.areas.get(&(Level::Town, t.clone())))
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                vec![
                    link(g.name.clone(), area_path(g)),
                    text(town),
                    text(self.value(g, Metric::HouseholdsVisited, self.last)),
                    text(self.value(g, Metric::Coverage, self.last)),
                ]
            })
            .collect();
        Table {
            caption: "按累计覆盖率从低到高,前20个网格".into(),
            headers: vec![
                "网格".into(),
                "镇(街道)".into(),
                "累计走访住户".into(),
                "覆盖率".into(),
            ],
            rows,
        }
    }

    fn overdue_cases(&self) -> Table {
        let rows = self
            .r
            .open_cases
            .iter()
            .take(20)
            .map(|c| {
                let grid = self.r.areas.get(&(Level::Grid, c.grid_id.clone()));
                let grid_cell = grid.map_or_else(
                    || text(c.grid_id.clone()),
                    |g| link(g.name.clone(), area_path(g)),
                );
                vec![
                    text(c.case_id.clone()),
                    text(if c.case_kind == "hazard" {
                        "隐患"
                    } else {
                        "诉求"
                    }),
                    text(c.category.clone()),
                    grid_cell,
                    text(c.opened_at.clone()),
                    text(format!("{:.0}", c.hours_open)),
                ]
            })
            .collect();
        Table {
            caption: "截至最后一日仍未办结、历时最长的20件".into(),
            headers: vec![
                "编号".into(),
                "类型".into(),
                "类别".into(),
                "网格".into(),
                "登记时间".into(),
                "已历时(小时)".into(),
            ],
            rows,
        }
    }

    fn area_page(&self, a: &Area) -> Result<OutputFile> {
        let path = area_path(a);
        let root = depth_root(&path);
        let mut crumbs = vec![Link {
            text: "首页".into(),
            href: format!("{root}index.html"),
        }];
        let mut chain = Vec::new();
        let mut parent = a.parent.clone();
        let mut level = a.level;
        while let Some(code) = parent {
            level = parent_level(level);
            let Some(p) = self.r.areas.get(&(level, code.clone())) else {
                break;
            };
            if p.level != Level::City {
                chain.push(Link {
                    text: p.name.clone(),
                    href: format!("{root}{}", area_path(p)),
                });
            }
            parent = p.parent.clone();
        }
        crumbs.extend(chain.into_iter().rev());
        let crumbs: Vec<TCell> = crumbs
            .into_iter()
            .map(|l| link(l.text, l.href))
            .chain([text(a.name.clone())])
            .collect();
        let children = (a.level != Level::Grid
            && (a.level != Level::Town || self.opts.audience == Audience::Internal))
            .then(|| self.children_table(a, &path));
        let downloads = (self.opts.audience == Audience::Public).then(|| {
            let stem = format!("{root}{}", data_stem(a));
            vec![
                Link {
                    text: "CSV".into(),
                    href: format!("{stem}.csv"),
                },
                Link {
                    text: "JSON".into(),
                    href: format!("{stem}.json"),
                },
            ]
        });
        let extra = context! {
            title => a.name.clone(),
            crumbs => Serde(crumbs),
            lead => format!("{} {} · 登记住户 {} 户 · 数据截至{}", level_label(a.level), a.code, self.registered(a), date_label(self.r.days[self.last])),
            cards => Serde(self.cards(a)),
            charts => Serde(self.area_charts(a)?),
            children_title => format!("下辖{}", level_label(child_level(a.level))),
            children => Serde(children),
            downloads => Serde(downloads),
        };
        self.page("area.html", &path, extra)
    }

    fn registered(&self, a: &Area) -> String {
        a.cum(Metric::HouseholdsRegistered, self.last)
            .map_or_else(|| "—".into(), |v| format!("{v:.0}"))
    }

    /// The bulletin of day `d`, in the style of the press office.
    fn bulletin_text(&self, d: usize) -> Vec<String> {
        let city = self.r.city().expect("checked");
        let day = self.r.days[d];
        let grids = self.r.level(Level::Grid).count();
        let v = |a: &Area, k: Metric| self.value(a, k, d);
        let mut paras = vec![format!(
            "截至{}月{}日,全市{}名机关干部下沉{}个网格,开展“三询问一完善”活动,累计走访住户{}户,住户覆盖率{},走访企业{}家、场所{}处,登记外来人员{}人,排查安全隐患{}处、已整改{}处,收集群众困难诉求{}件,已解决{}件。",
            day.month(),
            day.day(),
            v(city, Metric::ReportersCadre),
            grids,
            v(city, Metric::HouseholdsVisited),
            v(city, Metric::Coverage),
            v(city, Metric::EnterprisesVisited),
            v(city, Metric::VenuesVisited),
            v(city, Metric::NewcomersRegistered),
            v(city, Metric::HazardsFound),
            v(city, Metric::HazardsFixed),
            v(city, Metric::HardshipsRaised),
            v(city, Metric::HardshipsResolved),
        )];
        let inc = |k: Metric| {
            self.p
                .increment(city, k, d)
                .map_or_else(|| "×".into(), |x| format!("{x:.0}"))
        };
        paras.push(format!(
            "当日新增走访住户{}户,新增排查隐患{}处,新增困难诉求{}件、办结{}件;目前尚有{}件诉求、{}处隐患正在跟进办理。",
            inc(Metric::HouseholdsVisited),
            inc(Metric::HazardsFound),
            inc(Metric::HardshipsRaised),
            inc(Metric::HardshipsResolved),
            v(city, Metric::HardshipsOpen),
            v(city, Metric::HazardsOpen),
        ));
        let counties: Vec<String> = self
            .r
            .children(city)
            .map(|c| {
                format!(
                    "{}走访住户{}户,覆盖率{}",
                    c.name,
                    v(c, Metric::HouseholdsVisited),
                    v(c, Metric::Coverage)
                )
            })
            .collect();
        if !counties.is_empty() {
            paras.push(format!("分地区看,{}。", counties.join(";")));
        }
        let mut towns: Vec<(&Area, f64)> = self
            .r
            .level(Level::Town)
            .filter_map(|t| self.p.get(t, Metric::Coverage, d).map(|c| (t, c)))
            .collect();
        towns.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.code.cmp(&b.0.code)));
        if towns.len() >= 3 {
            let names: Vec<String> = towns
                .iter()
                .take(3)
                .map(|(t, c)| format!("{}({:.1}%)", t.name, c * 100.0))
                .collect();
            paras.push(format!(
                "覆盖率较低的镇(街道)为{},请相关单位加快推进,做到不漏一户、不落一人。",
                names.join("、")
            ));
        }
        paras
    }

    fn bulletins(&mut self) -> Result<()> {
        let city = self.r.city().expect("checked").clone();
        let mut entries = Vec::new();
        for d in 0..self.r.days.len() {
            let day = self.r.days[d];
            let path = format!("bulletins/{day}/index.html");
            let root = depth_root(&path);
            let paragraphs = self.bulletin_text(d);
            let keys = [
                Metric::HouseholdsVisited,
                Metric::Coverage,
                Metric::HazardsFound,
                Metric::HazardsFixed,
                Metric::HardshipsRaised,
                Metric::HardshipsResolved,
            ];
            let mut table = Table {
                caption: format!("截至{}各县(市、区)累计数据", date_label(day)),
                headers: vec!["地区".into()],
                rows: Vec::new(),
            };
            table
                .headers
                .extend(keys.iter().map(|k| k.label().to_string()));
            for a in std::iter::once(&city).chain(self.r.children(&city)) {
                let mut row = vec![link(a.name.clone(), format!("{root}{}", area_path(a)))];
                row.extend(keys.iter().map(|&k| text(self.value(a, k, d))));
                table.rows.push(row);
            }
            let nav = |i: usize| Link {
                text: date_label(self.r.days[i]),
                href: format!("../{}/index.html", self.r.days[i]),
            };
            let extra = context! {
                title => format!("{}“三询问一完善”活动通报", date_label(day)),
                date => day.to_string(),
                date_label => date_label(day),
                paragraphs => paragraphs.clone(),
                table => Serde(table),
                prev => Serde((d > 0).then(|| nav(d - 1))),
                next => Serde((d < self.last).then(|| nav(d + 1))),
            };
            self.render("bulletin.html", &path, extra)?;
            entries.push(context! {
                title => format!("{}通报", date_label(day)),
                path => format!("bulletins/{day}/"),
                updated => format!("{day}T21:00:00+08:00"),
                summary => paragraphs.first().cloned().unwrap_or_default(),
            });
        }
        let archive: Vec<Link> = self
            .r
            .days
            .iter()
            .rev()
            .map(|day| Link {
                text: format!("{}通报", date_label(*day)),
                href: format!("{day}/index.html"),
            })
            .collect();
        self.render(
            "archive.html",
            "bulletins/index.html",
            context! { title => "每日通报", bulletins => Serde(archive) },
        )?;
        entries.reverse();
        let updated = format!("{}T21:00:00+08:00", self.r.days[self.last]);
        let extra = context! { base_url => self.opts.base_url.clone(), entries => entries, updated => updated };
        self.render("feed.xml", "feed.xml", extra)
    }

    fn methodology(&mut self) -> Result<()> {
        let t = self.opts.threshold;
        let sections = vec![
            context! { heading => "数据来源", paragraphs => vec![
                "数据来自下沉干部、网格员、民警、志愿者和“两代表一委员”在走访住户、企业和场所时通过手机提交的记录。每条记录经校验后入库;格式错误、网格不存在或数字明显不合理的记录单独存放、逐条核查,不计入统计。同一记录重复提交的只计一次。".to_string(),
            ]},
            context! { heading => "指标口径", paragraphs => vec![
                "累计走访住户:活动开始以来至少走访过一次的不同住户数;住户覆盖率 = 累计走访住户 ÷ 登记住户。".to_string(),
                "核酸检测率、疫苗接种率:走访时登记的住户人员中,有有效核酸检测结果或已接种疫苗的比例。".to_string(),
                "已整改隐患:当场整改的隐患与移交后办结的隐患之和;未整改隐患为截至当日末尚未办结的移交隐患。".to_string(),
                "困难诉求:走访中收集的群众困难和诉求,按件跟踪至办结;未解决诉求为截至当日末尚未办结的件数。".to_string(),
                "下沉机关干部:活动开始以来提交过走访记录的不同机关干部人数。".to_string(),
            ]},
            context! { heading => "小数值保护", paragraphs => vec![
                format!("为保护个人信息,公开页面只发布市、县(市、区)和镇(街道)三级数据,不发布网格数据,不发布任何住户、人员编号或备注内容。小于{t}的数值显示为“<{t}”。"),
                format!("为防止通过“上级合计减去其他下级”或“两日累计数相减”推算出被隐藏的数值,部分数值也会隐藏并显示为“×”:同一上级下只有一个下级数值被隐藏时,另隐藏一个最小的下级数值;某日累计数与上一次公布值相差大于0且小于{t}时,当日累计数不公布。每日新增数只在前后两日累计数都公布时给出。"),
            ]},
        ];
        self.render(
            "page.html",
            "methodology/index.html",
            context! { title => "统计说明", sections => sections },
        )
    }

    fn downloads(&mut self) -> Result<()> {
        let mut all_rows = Vec::new();
        let mut links = Vec::new();
        let public: Vec<&Area> = self
            .r
            .areas
            .values()
            .filter(|a| a.level != Level::Grid)
            .collect();
        for a in public {
            let rows = self.table_rows(a);
            let stem = data_stem(a);
            self.out.push(OutputFile {
                path: format!("{stem}.csv"),
                bytes: to_csv(&rows).into_bytes(),
            });
            self.out.push(OutputFile {
                path: format!("{stem}.json"),
                bytes: serde_json::to_vec_pretty(&rows).expect("rows serialize"),
            });
            links.push(Link {
                text: format!("{}(CSV)", a.name),
                href: format!("../{stem}.csv"),
            });
            all_rows.extend(rows);
        }
        self.out.push(OutputFile {
            path: "data/all.csv".into(),
            bytes: to_csv(&all_rows).into_bytes(),
        });
        self.out.push(OutputFile {
            path: "data/all.json".into(),
            bytes: serde_json::to_vec_pretty(&all_rows).expect("rows serialize"),
        });
        let sections = vec![
            context! { heading => "全部数据", paragraphs => vec![format!("市、县(市、区)、镇(街道)三级每日累计数据。数值小于{}的单元格为“<{}”,因保护需要隐藏的为“×”。", self.opts.threshold, self.opts.threshold)],
            links => Serde(vec![Link { text: "all.csv".into(), href: "all.csv".into() }, Link { text: "all.json".into(), href: "all.json".into() }]) },
            context! { heading => "分地区数据", paragraphs => Vec::<String>::new(), links => Serde(links.into_iter().map(|l| Link { href: l.href.replace("../data/", ""), ..l }).collect::<Vec<_>>()) },
        ];
        self.render(
            "page.html",
            "data/index.html",
            context! { title => "数据下载", sections => sections },
        )
    }

    fn table_rows(&self, a: &Area) -> Vec<BTreeMap<&'static str, String>> {
        (0..self.r.days.len())
            .map(|d| {
                let mut row = BTreeMap::new();
                row.insert("date", self.r.days[d].to_string());
                row.insert("level", a.level.name().to_string());
                row.insert("area_code", a.code.clone());
                row.insert("area_name", a.name.clone());
                for &m in PUBLIC_FIGURES {
                    let v = match self.p.cell(a, m, d) {
                        Cell::Shown(v) if matches!(m.kind(), Kind::Ratio { .. }) => {
                            format!("{v:.4}")
                        }
                        c => self.show(m, c),
                    };
                    row.insert(m.name(), v);
                }
                row
            })
            .collect()
    }

    fn sitemap(&mut self) -> Result<()> {
        let mut urls: Vec<String> = self
            .out
            .iter()
            .filter(|f| f.path.ends_with("index.html"))
            .map(|f| f.path.trim_end_matches("index.html").to_string())
            .collect();
        urls.sort();
        let extra = context! { base_url => self.opts.base_url.clone(), urls => urls };
        self.render("sitemap.xml", "sitemap.xml", extra)
    }

    fn quality(&mut self) -> Result<()> {
        let mut by_day: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
        let mut classes: Vec<String> = Vec::new();
        for (dt, kind, class, n) in &self.r.quality {
            let key = match class {
                Some(c) => {
                    if !classes.contains(c) {
                        classes.push(c.clone());
                    }
                    format!("q:{c}")
                }
                None => kind.clone(),
            };
            *by_day
                .entry(dt.as_str())
                .or_default()
                .entry(key)
                .or_default() += n;
        }
        classes.sort();
        let base = [
            "raw_visits",
            "curated_visits",
            "raw_cases",
            "curated_cases",
            "late_arrivals",
        ];
        let mut headers: Vec<String> = vec![
            "日期".into(),
            "原始走访".into(),
            "去重后走访".into(),
            "去除重复".into(),
            "原始进展".into(),
            "去重后进展".into(),
            "迟报走访".into(),
        ];
        headers.extend(classes.iter().map(|c| format!("隔离:{c}")));
        let rows = by_day
            .iter()
            .map(|(dt, m)| {
                let g = |k: &str| m.get(k).copied().unwrap_or(0);
                let mut row = vec![text(dt.to_string())];
                row.extend(base[..2].iter().map(|k| text(g(k).to_string())));
                row.push(text((g("raw_visits") - g("curated_visits")).to_string()));
                row.extend(base[2..].iter().map(|k| text(g(k).to_string())));
                row.extend(
                    classes
                        .iter()
                        .map(|c| text(g(&format!("q:{c}")).to_string())),
                );
                row
            })
            .collect();
        let table = Table {
            caption: "按日统计的入库、去重、迟报和隔离记录(隔离按接收日期)".into(),
            headers,
            rows,
        };
        let sections = vec![
            context! { heading => "数据质量", paragraphs => vec!["去除重复 = 原始走访 − 去重后走访。迟报走访:提交时间晚于走访时间24小时以上。隔离记录按错误类别统计,原文保存在湖的 quarantine 表中。".to_string()], table => Serde(table) },
        ];
        self.render(
            "page.html",
            "quality/index.html",
            context! { title => "数据质量", sections => sections },
        )
    }
}

fn data_stem(a: &Area) -> String {
    format!("data/{}-{}", a.level.name(), a.code)
}

fn child_level(l: Level) -> Level {
    l.child().unwrap_or(l)
}

fn parent_level(l: Level) -> Level {
    l.parent().unwrap_or(l)
}

fn to_csv(rows: &[BTreeMap<&'static str, String>]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = first.keys().copied().collect::<Vec<_>>().join(",");
    out.push('\n');
    for r in rows {
        let line: Vec<String> = r
            .values()
            .map(|v| {
                if v.contains([',', '"', '\n']) {
                    format!("\"{}\"", v.replace('"', "\"\""))
                } else {
                    v.clone()
                }
            })
            .collect();
        out += &line.join(",");
        out.push('\n');
    }
    out
}
