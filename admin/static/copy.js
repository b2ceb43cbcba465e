// Copy buttons: <button data-copy="element-id">. A static file, so that the
// pages' Content-Security-Policy needs no inline script.
document.addEventListener('click', function (ev) {
  var b = ev.target.closest('button[data-copy]');
  if (!b) return;
  ev.preventDefault();
  var el = document.getElementById(b.getAttribute('data-copy'));
  if (!el) return;
  var text = 'value' in el ? el.value : el.textContent;
  var done = function () { var t = b.textContent; b.textContent = 'Copied'; setTimeout(function () { b.textContent = t; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { el.select && el.select(); });
  } else if (el.select) {
    el.select(); document.execCommand('copy'); done();
  }
});
