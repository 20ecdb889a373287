// Loaded before plotly.js on chart pages. The Content-Security-Policy blocks `style` attributes
// set with setAttribute (as from injected markup), while CSSOM writes (`el.style.cssText`) are
// not subject to it. plotly (through d3's .attr("style", ...)) sets a few style attributes per
// chart; route those through CSSOM so charts render fully without 'unsafe-inline'. Only scripts
// the policy already trusts run this code path. See mlplatform/csp.py.
(function () {
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (typeof name === "string" && name.toLowerCase() === "style") {
      this.style.cssText = value == null ? "" : String(value);
      return undefined;
    }
    return setAttribute.call(this, name, value);
  };
})();
