// Hearing protection on the interpreter's headphones: a brickwall limiter (an AudioWorklet, after
// volume and tone). It looks 2 ms ahead, so its gain is down when a peak leaves, recovers over
// 100 ms, and clips whatever is left at the ceiling: no sample ever leaves above it.

/** The ceiling: -6 dBFS. */
const CEILING = 10 ** (-6 / 20);
const LOOKAHEAD_S = 0.002;
const RELEASE_S = 0.1;

class Limiter extends AudioWorkletProcessor {
  constructor() {
    super();
    this.delay = Math.max(1, Math.round(LOOKAHEAD_S * sampleRate));
    this.buffer = new Float32Array(this.delay);
    this.at = 0;
    this.gain = 1;
    this.target = 1;
    this.ramp = 0;
    this.hold = 0;
    this.recover = Math.exp(-1 / (RELEASE_S * sampleRate));
    // The loudest sample that left, since the page last asked (for the page's own measurement).
    this.peak = 0;
    this.port.onmessage = () => {
      this.port.postMessage(this.peak);
      this.peak = 0;
    };
  }

  process(inputs, outputs) {
    const input = inputs[0];
    const output = outputs[0];
    if (!input.length) return true;
    const frames = input[0].length;
    for (let i = 0; i < frames; i++) {
      // The return is mono: the loudest input channel decides, every output gets the same.
      let x = input[0][i];
      for (let c = 1; c < input.length; c++) if (Math.abs(input[c][i]) > Math.abs(x)) x = input[c][i];
      const entering = Math.abs(x);
      const need = entering > CEILING ? CEILING / entering : 1;
      if (need < this.target) {
        // Down over the lookahead, so the gain is there when this sample leaves the delay
        // line, and held until it has.
        this.target = need;
        this.ramp = this.delay;
        this.hold = this.delay;
      }
      if (this.ramp > 0) {
        this.gain += (this.target - this.gain) / this.ramp;
        this.ramp--;
      } else if (this.hold > 0) {
        this.hold--;
      } else {
        this.gain = 1 - (1 - this.gain) * this.recover;
        this.target = this.gain;
      }
      const delayed = this.buffer[this.at];
      this.buffer[this.at] = x;
      this.at = (this.at + 1) % this.delay;
      let y = delayed * this.gain;
      // The gain already brought every peak to the ceiling; this only guards rounding.
      if (y > CEILING) y = CEILING;
      else if (y < -CEILING) y = -CEILING;
      if (Math.abs(y) > this.peak) this.peak = Math.abs(y);
      for (const out of output) out[i] = y;
    }
    return true;
  }
}

registerProcessor('tolk-limiter', Limiter);
