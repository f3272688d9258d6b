// The floor page: publish the microphone as the meeting's original audio.
import { checkLink, Session, inviteToken, microphone, analyse, meter, show, fail, captionIndicator, recordingIndicator, followConnection } from './tolk.js';
import { init, t, languagePicker } from './i18n.js';

await init();
document.body.prepend(languagePicker());
// Start is enabled at the end, once every handler is in place (and only for a link that works).
const linkWorks = checkLink();

const session = new Session();
window.tolk = { session };
session.addEventListener('error', (e) => fail(e.detail));
session.addEventListener('state', (e) => {
  captionIndicator(e.detail, document.getElementById('indicator'));
  recordingIndicator(e.detail, document.getElementById('recording'));
});
session.addEventListener('notice', (e) => {
  const n = document.getElementById('notice');
  n.textContent = t('floor.slow_down');
  n.hidden = false;
  clearTimeout(n.timer);
  n.timer = setTimeout(() => (n.hidden = true), 8000);
});
followConnection(session, () => t('floor.publishing'));
document.getElementById('start').onclick = async (ev) => {
  ev.target.disabled = true;
  try {
    const mic = await microphone();
    meter(analyse(mic), document.getElementById('mic'));
    // On every (re)join the microphone is published again.
    await session.run(inviteToken(), async (joined) => {
      show('room', t('room_of', { room: joined.room, name: joined.name }));
      await session.connect({ stream: mic, receive: false });
    });
    ev.target.hidden = true;
  } catch (e) { fail(e); ev.target.disabled = false; }
};

if (await linkWorks) document.getElementById('start').disabled = false;
