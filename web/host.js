// host.html: with a host token, the console of its room; without one, the organiser's page
// (sign in with the API key, create and open rooms).
import { inviteToken } from './tolk.js';
import { init, languagePicker } from './i18n.js';

await init();
document.body.prepend(languagePicker());
await import(inviteToken() ? './room.js' : './organise.js');
