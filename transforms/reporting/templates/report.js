(function () {
  // Click a header of a .sortable table to sort by that column (again: reverse).
  // The location hash #sort=KEY or #sort=-KEY (KEY: a header's data-key) sorts on load.
  function cellValue(row, col) {
    var cell = row.cells[col];
    return cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : cell.textContent.trim();
  }
  function sortBy(th, descending) {
    var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, col), y = cellValue(b, col), nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
    th.setAttribute('data-order', descending ? 'desc' : 'asc');
  }
  document.querySelectorAll('table.sortable th').forEach(function (th) {
    th.addEventListener('click', function () {
      var descending = th.getAttribute('data-order') === 'asc';
      sortBy(th, descending);
      if (th.dataset.key) {
        try {
          history.replaceState(null, '', '#sort=' + (descending ? '-' : '') + th.dataset.key);
        } catch (e) { /* some browsers refuse history changes on file: pages */ }
      }
    });
  });
  var wanted = /^#sort=(-?)([\w-]+)$/.exec(location.hash);
  if (wanted) {
    var th = document.querySelector('table.sortable th[data-key="' + wanted[2] + '"]');
    if (th) { sortBy(th, wanted[1] === '-'); }
  }
})();
