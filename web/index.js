// The front page: what each role's page is for, in the person's language.
import { init, languagePicker } from './i18n.js';

await init();
document.body.prepend(languagePicker());
