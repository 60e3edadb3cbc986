// pushgateway-rs web UI: remembers which groups are open, shows times in local time, and
// runs the delete buttons (behind a confirmation dialog). Everything else is server-rendered.
(function () {
  'use strict';

  var body = document.body;
  var base = body.getAttribute('data-base') || '';
  var storageKey = 'pushgateway-ui:' + base + ':open';
  var maxRemembered = 2000;

  // ---- Expansion state, kept across reloads in localStorage --------------------------------

  function loadOpen() {
    try {
      var value = JSON.parse(window.localStorage.getItem(storageKey) || '{}');
      return value && typeof value === 'object' ? value : {};
    } catch (e) {
      return {};
    }
  }

  function saveOpen(state) {
    var keys = Object.keys(state);
    // Oldest first (insertion order): forget the oldest when there are too many.
    for (var i = 0; i < keys.length - maxRemembered; i++) {
      delete state[keys[i]];
    }
    try {
      window.localStorage.setItem(storageKey, JSON.stringify(state));
    } catch (e) {
      // Storage full or disabled: the page still works, it just forgets.
    }
  }

  var openState = loadOpen();
  var groups = document.querySelectorAll('details.group');
  for (var i = 0; i < groups.length; i++) {
    var key = groups[i].getAttribute('data-key');
    if (Object.prototype.hasOwnProperty.call(openState, key)) {
      groups[i].open = !!openState[key];
    }
  }

  function remember(group) {
    var key = group.getAttribute('data-key');
    delete openState[key];
    openState[key] = group.open;
    saveOpen(openState);
  }

  function forget(group) {
    delete openState[group.getAttribute('data-key')];
    saveOpen(openState);
  }

  // `toggle` does not bubble: listen in the capture phase.
  document.addEventListener('toggle', function (event) {
    var target = event.target;
    if (target.classList && target.classList.contains('group')) {
      remember(target);
    }
  }, true);

  function setAll(open) {
    var all = document.querySelectorAll('details.group');
    for (var i = 0; i < all.length; i++) {
      all[i].open = open;
    }
  }

  on('expand-all', function () { setAll(true); });
  on('collapse-all', function () { setAll(false); });

  // ---- Times ---------------------------------------------------------------------------------

  function plural(n, unit) {
    return n + ' ' + unit + (n === 1 ? '' : 's');
  }

  function ago(date) {
    var seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
    if (seconds < 10) return 'just now';
    if (seconds < 60) return plural(seconds, 'second') + ' ago';
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return plural(minutes, 'minute') + ' ago';
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return plural(hours, 'hour') + ' ago';
    return plural(Math.floor(hours / 24), 'day') + ' ago';
  }

  function duration(date) {
    var seconds = Math.max(0, Math.floor((Date.now() - date.getTime()) / 1000));
    var d = Math.floor(seconds / 86400);
    var h = Math.floor(seconds % 86400 / 3600);
    var m = Math.floor(seconds % 3600 / 60);
    var s = seconds % 60;
    if (d > 0) return d + ' d ' + h + ' h';
    if (h > 0) return h + ' h ' + m + ' min';
    if (m > 0) return m + ' min ' + s + ' s';
    return s + ' s';
  }

  function local(date) {
    return date.toLocaleString(undefined, {
      year: 'numeric', month: 'short', day: 'numeric',
      hour: '2-digit', minute: '2-digit', second: '2-digit'
    });
  }

  function renderTimes() {
    var times = document.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var iso = el.getAttribute('datetime');
      var date = new Date(iso);
      if (isNaN(date.getTime())) continue;
      if (el.classList.contains('rel')) {
        el.textContent = ago(date);
        el.title = local(date) + ' (' + iso + ')';
      } else if (el.classList.contains('uptime')) {
        el.textContent = duration(date);
      } else {
        el.textContent = local(date);
        el.title = iso;
      }
    }
  }

  renderTimes();
  window.setInterval(renderTimes, 30000);

  // ---- Confirmation dialog and messages ------------------------------------------------------

  var dialog = document.getElementById('confirm');
  var pending = null;

  function confirmThen(title, text, target, okLabel, action) {
    if (!dialog || typeof dialog.showModal !== 'function') {
      if (window.confirm(text + (target ? '\n\n' + target : ''))) action();
      return;
    }
    document.getElementById('confirm-title').textContent = title;
    var paragraph = document.getElementById('confirm-text');
    paragraph.textContent = text;
    if (target) {
      var span = document.createElement('span');
      span.className = 'target';
      span.textContent = target;
      paragraph.appendChild(span);
    }
    document.getElementById('confirm-ok').textContent = okLabel;
    pending = action;
    dialog.returnValue = '';
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  }

  if (dialog) {
    dialog.addEventListener('close', function () {
      var action = pending;
      pending = null;
      if (dialog.returnValue === 'confirm' && action) action();
    });
  }

  var toastTimer = null;
  function toast(message, isError) {
    var el = document.getElementById('toast');
    if (!el) return;
    el.textContent = message;
    el.className = 'toast' + (isError ? ' error' : '');
    el.hidden = false;
    window.clearTimeout(toastTimer);
    toastTimer = window.setTimeout(function () { el.hidden = true; }, isError ? 8000 : 4000);
  }

  function failure(response) {
    return response.text().then(function (text) {
      throw new Error(response.status + ' ' + response.statusText + (text ? ': ' + text.trim() : ''));
    });
  }

  // ---- Deleting ------------------------------------------------------------------------------

  function adjustCount(delta) {
    var counters = [document.getElementById('group-count'), document.getElementById('delete-all')];
    for (var i = 0; i < counters.length; i++) {
      var el = counters[i];
      if (!el) continue;
      var count = Math.max(0, parseInt(el.getAttribute('data-count'), 10) + delta);
      el.setAttribute('data-count', String(count));
      if (el.id === 'group-count') el.textContent = count === 1 ? '1 group' : count + ' groups';
    }
  }

  function deleteGroup(button) {
    var group = button.closest('details.group');
    var name = button.getAttribute('data-name');
    button.disabled = true;
    window.fetch(button.getAttribute('data-url'), { method: 'DELETE' }).then(function (response) {
      if (!response.ok) return failure(response);
      forget(group);
      group.parentNode.removeChild(group);
      adjustCount(-1);
      toast('Deleted group ' + name);
      if (!document.querySelector('details.group')) window.location.reload();
    }).catch(function (error) {
      button.disabled = false;
      toast('Could not delete the group: ' + error.message, true);
    });
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest ? event.target.closest('button.delete-group') : null;
    if (!button) return;
    event.preventDefault();
    confirmThen(
      'Delete group?',
      'This removes the group and all its metrics from the Pushgateway. Prometheus stops seeing them at its next scrape.',
      button.getAttribute('data-name'),
      'Delete group',
      function () { deleteGroup(button); }
    );
  });

  on('delete-all', function (event) {
    var button = event.currentTarget;
    var count = button.getAttribute('data-count');
    confirmThen(
      'Delete all groups?',
      'This removes every group (' + count + ' in all, not only this page) and all their metrics from the Pushgateway.',
      '',
      'Delete all ' + count + ' groups',
      function () {
        button.disabled = true;
        window.fetch(button.getAttribute('data-url'), { method: 'PUT' }).then(function (response) {
          if (!response.ok) return failure(response);
          saveOpen(openState = {});
          window.location.href = base + '/';
        }).catch(function (error) {
          button.disabled = false;
          toast('Could not delete the groups: ' + error.message, true);
        });
      }
    );
  });

  function on(id, handler) {
    var el = document.getElementById(id);
    if (el) el.addEventListener('click', handler);
  }

  body.setAttribute('data-ready', 'true');
})();
