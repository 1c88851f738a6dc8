/* Usage charts (Chart.js). Data arrives as JSON in data-chart attributes, amounts in
   integer micro-P; they are turned into P only for drawing and labels. */
(function () {
  "use strict";

  var PALETTE = ["#6366f1", "#14b8a6", "#f59e0b", "#ef4444", "#8b5cf6", "#22c55e",
                 "#ec4899", "#0ea5e9", "#f97316", "#84cc16", "#a855f7", "#64748b"];

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function formatP(p) {
    var digits = Math.abs(p) < 100 ? 4 : 2;
    return new Intl.NumberFormat("en-US", { minimumFractionDigits: Math.min(2, digits), maximumFractionDigits: digits }).format(p) + " P";
  }

  function formatUSD(p) {
    var usd = p / 1000;
    var digits = usd !== 0 && Math.abs(usd) < 0.01 ? 4 : 2;
    return "$" + new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(usd);
  }

  function formatCount(n) {
    return new Intl.NumberFormat("en-US").format(n);
  }

  function toP(micro) { return micro / 1e6; }

  function baseOptions() {
    var text = cssVar("--text-muted", "#64748b");
    var grid = cssVar("--border", "#e2e8f0");
    Chart.defaults.color = text;
    Chart.defaults.borderColor = grid;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    return { responsive: true, maintainAspectRatio: false, animation: { duration: 250 } };
  }

  function costByModel(canvas, data) {
    var values = data.cost_micro_p.map(toP);
    var byName = data.labels.slice().sort();
    var options = baseOptions();
    options.cutout = "62%";
    options.plugins = {
      legend: { position: "right", labels: { boxWidth: 12 } },
      tooltip: {
        callbacks: {
          label: function (ctx) { return ctx.label + ": " + formatP(ctx.parsed) + " (" + formatUSD(ctx.parsed) + ")"; }
        }
      }
    };
    return new Chart(canvas, {
      type: "doughnut",
      data: {
        labels: data.labels,
        // Coloured by name order, as the daily chart's series are, so a model keeps one colour on the page.
        datasets: [{ data: values, backgroundColor: data.labels.map(function (label) { return PALETTE[byName.indexOf(label) % PALETTE.length]; }),
                     borderColor: cssVar("--surface", "#ffffff"), borderWidth: 2 }]
      },
      options: options
    });
  }

  function dailyDatasets(data, metric) {
    return data.series.map(function (series, i) {
      var values = series[metric];
      return {
        label: series.model,
        data: metric === "cost_micro_p" ? values.map(toP) : values,
        backgroundColor: PALETTE[i % PALETTE.length],
        borderRadius: 3,
        stack: "usage"
      };
    });
  }

  function dailyUsage(canvas, data) {
    var state = { metric: "cost_micro_p" };
    var options = baseOptions();
    options.scales = {
      x: { stacked: true, grid: { display: false } },
      y: { stacked: true, beginAtZero: true,
           ticks: { callback: function (v) { return state.metric === "cost_micro_p" ? formatP(v) : formatCount(v); } } }
    };
    options.plugins = {
      legend: { position: "bottom", labels: { boxWidth: 12 } },
      tooltip: {
        callbacks: {
          label: function (ctx) {
            var v = ctx.parsed.y;
            if (state.metric === "cost_micro_p") return ctx.dataset.label + ": " + formatP(v) + " (" + formatUSD(v) + ")";
            return ctx.dataset.label + ": " + formatCount(v) + (state.metric === "tokens" ? " tokens" : " requests");
          }
        }
      }
    };
    var chart = new Chart(canvas, {
      type: "bar",
      data: { labels: data.days, datasets: dailyDatasets(data, state.metric) },
      options: options
    });
    var card = canvas.closest(".card");
    if (card) {
      card.querySelectorAll("[data-metric]").forEach(function (button) {
        button.addEventListener("click", function () {
          state.metric = button.getAttribute("data-metric");
          card.querySelectorAll("[data-metric]").forEach(function (b) {
            var on = b === button;
            b.classList.toggle("active", on);
            b.setAttribute("aria-pressed", on ? "true" : "false");
          });
          chart.data.datasets = dailyDatasets(data, state.metric);
          chart.update();
        });
      });
    }
    return chart;
  }

  function initCharts(root) {
    if (!window.Chart) return;
    root.querySelectorAll("canvas[data-chart-kind]").forEach(function (canvas) {
      if (Chart.getChart(canvas)) return;
      var data;
      try { data = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
      if (canvas.getAttribute("data-chart-kind") === "cost-by-model") costByModel(canvas, data);
      else if (canvas.getAttribute("data-chart-kind") === "daily-usage") dailyUsage(canvas, data);
      canvas.setAttribute("data-chart-ready", "true");
    });
  }

  document.addEventListener("DOMContentLoaded", function () { initCharts(document); });
  document.addEventListener("htmx:load", function (event) { initCharts(event.detail.elt); });
  document.addEventListener("htmx:beforeCleanupElement", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.tagName === "CANVAS" && window.Chart) {
      var chart = Chart.getChart(elt);
      if (chart) chart.destroy();
    }
  });
})();
