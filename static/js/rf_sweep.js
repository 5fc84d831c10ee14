// ERF against depth (POST /api/receptive-field/sweep): a stack of 3×3 convolutions, the centre
// unit after 1, 2, … layers. The theoretical field r grows linearly with depth (exponentially
// when the dilation doubles at each layer); the effective field, drawn as its ±2σ width (4σ,
// the mean of both axes), grows only like √depth for a plain stack (Luo et al., 2016).

import { t } from "./i18n.js";
import { formatNumber } from "./format.js";
import { createLineChart } from "./chart.js";

// One request per growth: a plain stack reaches r = 33 on 64×64 inputs; doubling dilations reach
// r = 127 in 6 layers, so they get 128×128 inputs to stay clear of the border.
export const SWEEPS = {
  constant: { stack: { depth: 16, kernel: 3, growth: "constant" }, size: 64, samples: 8 },
  doubling: { stack: { depth: 6, kernel: 3, growth: "doubling" }, size: 128, samples: 8 },
};

export function createSweepChart(container, caption) {
  const chart = createLineChart(container, {
    label: t("rf.sweep.chart"),
    xLabel: t("rf.sweep.depth"),
    yLabel: t("rf.sweep.pixels"),
    onHover: (index) => describe(index),
  });
  let points = [];
  let exponents = null;

  function describe(index) {
    if (!points.length) return;
    const point = points[index ?? points.length - 1];
    const sigma = (point.fit.sigma.height + point.fit.sigma.width) / 2;
    caption.textContent = [
      t("rf.sweep.point", {
        depth: point.depth,
        size: point.theoretical_size,
        width: formatNumber(4 * sigma, 1),
        share: formatNumber(point.share_95 * 100, 1),
      }),
      exponents,
    ].filter(Boolean).join(" ");
  }

  return {
    /** Draw a /sweep answer. */
    show(answer) {
      points = answer.points;
      chart.update({
        x: points.map((p) => p.depth),
        series: [
          { name: t("rf.sweep.theoretical"), values: points.map((p) => p.theoretical_size) },
          {
            name: t("rf.sweep.erf"),
            values: points.map((p) => 2 * (p.fit.sigma.height + p.fit.sigma.width)),
          },
        ],
      });
      chart.element.dataset.points = String(points.length);
      exponents = answer.erf_exponent === null ? "" : t("rf.sweep.exponents", {
        erf: formatNumber(answer.erf_exponent, 2),
        theoretical: formatNumber(answer.theoretical_exponent, 2),
      });
      describe(null);
    },
  };
}
