// Candles and volume with lightweight-charts (vendored from npm by exchange.dev.webassets):
// history from /api/v1/klines, then the current bucket live from kline_<I>@<M>.

import {
  createChart,
  CandlestickSeries,
  HistogramSeries,
} from "/static/vendor/lightweight-charts.mjs";

export const INTERVALS = ["1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"];
const UP = "#1aa37a";
const DOWN = "#e0495b";

export class Chart {
  constructor(element) {
    this.element = element;
    this.chart = createChart(element, {
      autoSize: true,
      layout: { background: { color: "transparent" }, textColor: "#9aa4b2", attributionLogo: false },
      grid: { vertLines: { color: "#1e2530" }, horzLines: { color: "#1e2530" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#2a3240" },
      rightPriceScale: { borderColor: "#2a3240" },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN,
    });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceFormat: { type: "volume" }, priceScaleId: "volume", lastValueVisible: false,
    });
    this.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.lastTime = null;
    this.bars = [];
  }

  setPrecision(tickSize) {
    const decimals = (tickSize.split(".")[1] || "").length;
    this.candles.applyOptions({
      priceFormat: { type: "price", precision: decimals, minMove: Number(tickSize) },
    });
  }

  load(klines) {
    this.bars = klines.map(bar);
    this.candles.setData(this.bars.map((b) => b.candle));
    this.volume.setData(this.bars.map((b) => b.volume));
    this.lastTime = this.bars.length ? this.bars[this.bars.length - 1].candle.time : null;
    this.chart.timeScale().scrollToRealTime();
  }

  // A live kline frame: the current bucket, replacing or appending the last bar.
  update(kline) {
    const b = bar(kline);
    if (this.lastTime !== null && b.candle.time < this.lastTime) return; // stale frame
    this.candles.update(b.candle);
    this.volume.update(b.volume);
    if (this.lastTime === b.candle.time) this.bars[this.bars.length - 1] = b;
    else this.bars.push(b);
    this.lastTime = b.candle.time;
  }

  // The last bar as the page shows it (tests read it).
  last() {
    return this.bars.length ? this.bars[this.bars.length - 1].kline : null;
  }
}

function bar(k) {
  const time = Math.floor(Date.parse(k.start) / 1000);
  const up = Number(k.close) >= Number(k.open);
  return {
    kline: k,
    candle: { time, open: Number(k.open), high: Number(k.high), low: Number(k.low), close: Number(k.close) },
    volume: { time, value: Number(k.volume), color: up ? "rgba(26,163,122,0.45)" : "rgba(224,73,91,0.45)" },
  };
}
