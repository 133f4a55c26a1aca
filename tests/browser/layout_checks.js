// Checks run inside a page by tests/browser/test_layout.py. Each returns a list of problems in words.
// The file is one expression: the checks by name, e.g. `(SOURCE).overflow()`.
(() => {
  function shown(el) {
    const s = getComputedStyle(el);
    if (s.display === 'none' || s.visibility !== 'visible' || Number(s.opacity) === 0) return false;
    const r = el.getBoundingClientRect();
    return r.width > 1 && r.height > 1 && r.right > 0;
  }

  function describe(el) {
    const classes = typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\s+/).join('.') : '';
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + classes;
  }

  return {
    // Elements reaching past the viewport's sides, unless a deliberate scroll container
    // (overflow-x auto or scroll) inside the viewport holds them. An element entirely left of the
    // page is the skip link's way of hiding until focused, not an overflow.
    overflow() {
      const vw = document.documentElement.clientWidth;
      const problems = [];
      const inScroller = (el) => {
        for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
          const ox = getComputedStyle(p).overflowX;
          if (ox === 'auto' || ox === 'scroll') {
            const b = p.getBoundingClientRect();
            return b.left >= -0.5 && b.right <= vw + 0.5;
          }
        }
        return false;
      };
      let last = null;
      for (const el of document.body.querySelectorAll('*')) {
        if (!shown(el)) continue;
        const r = el.getBoundingClientRect();
        const out = r.right > vw + 0.5 || (r.left < -0.5 && r.right > 0);
        if (!out || inScroller(el) || (last && last.contains(el))) continue;
        last = el;
        problems.push(`${describe(el)} spans ${Math.round(r.left)}..${Math.round(r.right)} px`);
      }
      const width = document.documentElement.scrollWidth;
      if (width > vw + 1) problems.push(`the page is ${width} px wide in a ${vw} px viewport`);
      return problems;
    },

    // A nav link is reachable when, with the page at its top, it lies whole inside the viewport and
    // inside every box that clips it (a nav that scrolls sideways hides some links), uncovered.
    nav() {
      window.scrollTo(0, 0);
      const vw = document.documentElement.clientWidth;
      const problems = [];
      const links = [...document.querySelectorAll('header.top nav a')];
      for (const a of links) {
        const r = a.getBoundingClientRect();
        const label = a.textContent.trim();
        if (r.width < 8 || r.height < 8) {
          problems.push(`nav link ${label} is not shown`);
          continue;
        }
        if (r.left < -0.5 || r.right > vw + 0.5) {
          problems.push(`nav link ${label} lies outside the viewport`);
          continue;
        }
        let clipped = false;
        for (let p = a.parentElement; p && p !== document.documentElement; p = p.parentElement) {
          if (getComputedStyle(p).overflowX === 'visible') continue;
          const b = p.getBoundingClientRect();
          if (r.left < b.left - 0.5 || r.right > b.right + 0.5) clipped = true;
        }
        if (clipped) {
          problems.push(`nav link ${label} is cut off by a box around it`);
          continue;
        }
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        if (!hit || !(a === hit || a.contains(hit))) problems.push(`nav link ${label} is covered at its middle`);
      }
      if (links.length < 5) problems.push(`the nav shows ${links.length} links`);
      return problems;
    },

    // SVG text is drawn at the scale of its drawing: it must keep its shape (not squashed sideways),
    // be at least 11 px tall on screen, and not overlap other text of the same drawing.
    svgText() {
      const problems = [];
      for (const svg of document.querySelectorAll('svg')) {
        if (!shown(svg)) continue;
        const boxes = [];
        for (const t of svg.querySelectorAll('text')) {
          const b = t.getBoundingClientRect();
          if (b.width === 0 || !t.textContent.trim()) continue;
          const m = t.getScreenCTM();
          const sx = Math.hypot(m.a, m.b);
          const sy = Math.hypot(m.c, m.d);
          const size = parseFloat(getComputedStyle(t).fontSize) * sy;
          const label = `svg text “${t.textContent.trim().slice(0, 30)}”`;
          if (Math.abs(sx / sy - 1) > 0.05) problems.push(`${label} is stretched ${(sx / sy).toFixed(2)}:1`);
          if (size < 11) problems.push(`${label} is ${size.toFixed(1)} px`);
          for (const [other, o] of boxes) {
            const apart = b.right <= o.left + 0.5 || o.right <= b.left + 0.5 || b.bottom <= o.top + 0.5 || o.bottom <= b.top + 0.5;
            if (!apart) problems.push(`${label} overlaps “${other.textContent.trim().slice(0, 30)}”`);
          }
          boxes.push([t, b]);
        }
      }
      return problems;
    },

    // The contrast of every visible piece of text (text nodes, ::before and ::after content, form
    // values and placeholders, SVG text) against the background composited from what lies under it:
    // the ancestors' background colours for HTML, the shapes under its middle for SVG text.
    contrast(minimum) {
      const checks = [];
      for (const el of document.body.querySelectorAll('*')) {
        if (!shown(el) || el.closest('title, option, script, style')) continue;
        const s = getComputedStyle(el);
        const svg = el instanceof SVGTextContentElement;
        const own = [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join('').trim();
        if (own) checks.push({el, text: own, colour: rgba(svg ? s.fill : s.color), svg});
        for (const pseudo of ['::before', '::after']) {
          const ps = getComputedStyle(el, pseudo);
          const content = (ps.content || '').replace(/^(none|normal)$/, '');
          if (content.replace(/["']/g, '').trim() && ps.display !== 'none') {
            checks.push({el, text: el.getAttribute('data-label') || content, colour: rgba(ps.color), svg: false});
          }
        }
        const skipped = ['hidden', 'checkbox', 'radio', 'submit', 'button'];
        const input = el instanceof HTMLInputElement && !skipped.includes(el.type);
        if (input || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement) {
          const value = el instanceof HTMLSelectElement ? (el.selectedOptions[0] || {}).text || '' : el.value;
          if (value) {
            checks.push({el, text: value, colour: rgba(s.color), svg: false});
          } else if (el.placeholder) {
            const colour = rgba(getComputedStyle(el, '::placeholder').color);
            checks.push({el, text: el.placeholder, colour, svg: false});
          }
        }
      }
      const problems = [];
      for (const check of checks) {
        const background = check.svg ? svgBackground(check.el) : htmlBackground(check.el);
        const where = `${describe(check.el)} “${check.text.slice(0, 40)}”`;
        if (!background || !check.colour) {
          problems.push(`${where}: colour not computable`);
          continue;
        }
        const colour = check.colour.slice();
        colour[3] *= opacity(check.el);
        const value = ratio(over(colour, background), background);
        if (value < minimum) problems.push(`${where}: ${value.toFixed(2)}:1`);
      }
      window.scrollTo(0, 0);
      if (checks.length < 20) problems.push(`only ${checks.length} pieces of text were found`);
      return [...new Set(problems)];

      function rgba(value) {
        const m = /rgba?\(([^)]+)\)/.exec(value || '');
        if (!m) return null;
        const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
        return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
      }
      function over(top, bottom) {
        const a = top[3];
        return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
      }
      function luminance(c) {
        const linear = c.slice(0, 3).map((v) => {
          v /= 255;
          return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
      }
      function ratio(a, b) {
        const [high, low] = [luminance(a), luminance(b)].sort((x, y) => y - x);
        return (high + 0.05) / (low + 0.05);
      }
      function opacity(el) {
        let o = 1;
        for (let p = el; p && p.nodeType === Node.ELEMENT_NODE; p = p.parentElement) o *= Number(getComputedStyle(p).opacity);
        return o;
      }
      function composite(layers) {
        // Layers are listed top first; the canvas under everything is white.
        return layers.reverse().reduce((below, layer) => over(layer, below), [255, 255, 255, 1]);
      }
      function htmlBackground(el) {
        const layers = [];
        for (let p = el; p && p.nodeType === Node.ELEMENT_NODE; p = p.parentElement) {
          const s = getComputedStyle(p);
          if (s.backgroundImage !== 'none') return null;
          const c = rgba(s.backgroundColor);
          if (c && c[3] > 0) {
            layers.push(c);
            if (c[3] >= 1) break;
          }
        }
        return composite(layers);
      }
      function svgBackground(el) {
        el.scrollIntoView({block: 'center', inline: 'center'});
        const r = el.getBoundingClientRect();
        const layers = [];
        for (const under of document.elementsFromPoint(r.left + r.width / 2, r.top + r.height / 2)) {
          if (under === el || el.contains(under) || (under instanceof SVGElement && under.contains(el))) continue;
          const s = getComputedStyle(under);
          let c = null;
          if (under instanceof SVGGraphicsElement && !(under instanceof SVGTextContentElement)) {
            c = rgba(s.fill);
            if (c) c[3] *= Number(s.fillOpacity) * opacity(under);
          } else if (!(under instanceof SVGElement)) {
            c = rgba(s.backgroundColor);
          }
          if (c && c[3] > 0) {
            layers.push(c);
            if (c[3] >= 1) break;
          }
        }
        return composite(layers);
      }
    },
  };
})()
